"""The autograder: collect, grade (sandbox, fork server, cluster), feedback, export, Gradescope."""
