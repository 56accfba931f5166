"""The Gradio app for journalists and educators."""
