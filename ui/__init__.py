"""The app's own Gradio components (the library in `search/` imports no Gradio)."""
