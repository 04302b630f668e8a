"""Shared by the tests: the assignment harness, the lecture-notebook loader, the attack corpus, the services
(PostgreSQL, Dask), the a1 course factory, the wrong answers."""
