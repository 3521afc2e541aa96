"""Real-browser end-to-end tests (JupyterLab 4, Notebook 7, Chromium)."""
