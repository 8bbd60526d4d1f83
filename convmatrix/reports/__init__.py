"""Reports: Markdown documents of layers and stacks, figures, stack files and the built-in reports."""
