"""The assignments: reference solutions get full marks, wrong answers lose exactly their points, release/ is
what nbgrader generates."""
