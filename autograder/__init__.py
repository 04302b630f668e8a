"""The grading pipeline of the course (see README.md)."""
