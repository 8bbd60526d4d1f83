"""Reports: Markdown documents of layers and stacks, figures, stack files, built-in reports."""
