"""The lecture notebooks and the helper library they import (cnnbook)."""
