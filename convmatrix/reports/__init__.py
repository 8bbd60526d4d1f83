"""Reports: Markdown documents of layers and stacks, figures, stack files, built-in reports."""

from convmatrix.reports.builtin import (
    builtin_reports,
    builtin_stack_reports,
    checkerboard_generator_report,
    index_markdown,
    inverse_report,
    seed_report,
)
from convmatrix.reports.document import Report
from convmatrix.reports.figures import (
    figures_available,
    overlap_maps_png,
    overlap_png,
    sparsity_png,
)
from convmatrix.reports.layer import (
    ReportLayer,
    check_report_budget,
    keras_conv,
    layer_report,
    layer_title,
)
from convmatrix.reports.stack import (
    compare_report,
    layers_table,
    stack_report,
    verification_section,
)
from convmatrix.reports.stackfile import StackFile, kernel_values, load_stack, parse_stack

__all__ = [
    "Report",
    "ReportLayer",
    "StackFile",
    "builtin_reports",
    "builtin_stack_reports",
    "check_report_budget",
    "checkerboard_generator_report",
    "compare_report",
    "figures_available",
    "index_markdown",
    "inverse_report",
    "keras_conv",
    "kernel_values",
    "layer_report",
    "layer_title",
    "layers_table",
    "load_stack",
    "overlap_maps_png",
    "overlap_png",
    "parse_stack",
    "seed_report",
    "sparsity_png",
    "stack_report",
    "verification_section",
]
