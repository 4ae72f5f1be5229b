"""Sphinx extension for the book: one toggle per exercise.

A chapter's exercise is answered by a ``Solution`` dropdown admonition in markdown, and the
solution's code by the code cell right after it, tagged ``hide-cell`` (so that it still runs in
Jupyter and under nbval). Rendered as they are, the reader gets two toggles: the dropdown, then
myst-nb's unlabelled "Show code cell content" bar. This transform moves such a code cell, input
and output, into the dropdown at build time and drops its own ``hide-cell`` folding, so the
dropdown holds the text and the code that shows its answer, open once the dropdown is. Nothing
happens to a hidden cell that does not directly follow a Solution dropdown.
"""

from docutils import nodes
from sphinx.transforms import SphinxTransform

TITLE = "Solution"


def is_solution_dropdown(node: nodes.Node) -> bool:
    if not isinstance(node, nodes.admonition) or "dropdown" not in node["classes"]:
        return False
    title = node.next_node(nodes.title)
    return title is not None and title.parent is node and title.astext().startswith(TITLE)


def is_hidden_code_cell(node: nodes.Node) -> bool:
    if not isinstance(node, nodes.container) or node.get("nb_element") != "cell_code":
        return False
    tags = (node.get("cell_metadata") or {}).get("tags") or []
    return "hide-cell" in tags or node.get("hide_mode") == "all"


class SolutionCodeIntoDropdown(SphinxTransform):
    """Move the hidden code cell that follows a Solution dropdown into that dropdown."""

    default_priority = 500

    def apply(self, **kwargs) -> None:
        for dropdown in list(self.document.findall(is_solution_dropdown)):
            parent = dropdown.parent
            if parent is None:
                continue
            at = parent.index(dropdown)
            if at + 1 >= len(parent.children) or not is_hidden_code_cell(parent[at + 1]):
                continue
            cell = parent[at + 1]
            parent.remove(cell)
            for key in ("hide_mode", "prompt_show", "prompt_hide"):
                cell.attributes.pop(key, None)  # myst-nb's HideInputCells leaves it unwrapped
            cell["classes"] = [c for c in cell["classes"] if c != "tag_hide-cell"]
            cell["classes"].append("tinygpt-solution-code")
            dropdown.append(cell)


def setup(app):
    app.add_transform(SolutionCodeIntoDropdown)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
