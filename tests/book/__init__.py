"""The book: the Jupyter Book build, the site in a real browser, the repository's hygiene."""
