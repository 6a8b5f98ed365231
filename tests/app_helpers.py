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
