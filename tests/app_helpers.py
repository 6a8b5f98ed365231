"""Helpers for AppTest tests of the explorer's pages (not a test module)."""


def gt_uploader(at):
    """The sidebar's annotation-file uploader (one per image: its key names the image)."""
    for up in at.file_uploader:
        if str(getattr(up, "key", "")).startswith("gt_file_"):
            return up
    raise KeyError("no annotation-file uploader on this run")


def ws_of(at):
    """The session's `explorer.workspace.Workspace`."""
    return at.session_state["_workspace"]


def traced(at) -> dict | None:
    """The workspace's traced object as {"kind", "index"} or {"kind", "default_index",
    "label"}, with "image" (its digest); None when nothing is traced."""
    t = ws_of(at).traced
    if t is None:
        return None
    kind, *parts = t[1].split(":")
    if kind == "gt":
        return {"kind": "gt", "index": int(parts[0]), "image": t[0]}
    return {"kind": "detection", "default_index": int(parts[0]), "label": int(parts[1]), "image": t[0]}
