"""Pascal VOC XML: the one reader and writer of `Annotations/<id>.xml` files (and of the
app's VOC download, `voc_xml_bytes`).

Reading goes through `defusedxml` with DTDs forbidden: a VOC file has none, and a DTD
is how entity expansion ("billion laughs") and external references (local files, URLs)
get in. Files are size-checked first (`MAX_VOC_XML_BYTES`) and may hold at most
`MAX_BOXES_PER_IMAGE` objects.

Coordinates: VOC pixels are 1-based and inclusive (the devkit's `xmin = 1` is the first
column, `xmax = W` the last), so the reader converts once, x1 = xmin - 1, y1 = ymin - 1,
x2 = xmax, y2 = ymax, to 0-based corners; the writer does the inverse. `<difficult>1`
is kept as a flag on the object; what to do with it is the caller's rule
(`ssd.data.voc` drops it unless keep_difficult, as the VOC devkit's evaluation ignores it).
The image of `Annotations/<id>.xml` is `JPEGImages/<id>.jpg` (devkit, torchvision's
`VOCDetection`); `<filename>` is informative only.
"""
from __future__ import annotations

import io
import math
import os
from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree as ET

import defusedxml
import defusedxml.ElementTree as SafeET

from ssd.data.formats.base import (MAX_BOXES_PER_IMAGE, MAX_VOC_XML_BYTES, AnnotatedBox, AnnotationError,
                                   check_box_count, plain, read_bytes_limited)
from ssd.io import write_bytes_atomic


@dataclass(frozen=True)
class VOCAnnotation:
    """One VOC XML file, read."""

    source: str  # the file it came from (for messages)
    filename: str | None  # <filename>, informative only (the image is JPEGImages/<id>.jpg)
    image_hw: tuple[int, int] | None  # (H, W) from <size>, None when the file has no <size>
    objects: tuple[AnnotatedBox, ...]  # every <object>, difficult ones included (flagged)


def _text(node: ET.Element, tag: str, where: str) -> str:
    child = node.find(tag)
    if child is None or child.text is None or not child.text.strip():
        raise AnnotationError(f"{where}: missing <{tag}>")
    return child.text.strip()


def _number(node: ET.Element, tag: str, where: str) -> float:
    text = _text(node, tag, where)
    try:
        value = float(text)
    except ValueError:
        raise AnnotationError(f"{where}: <{tag}> is not a number ({plain(text)})") from None
    if not math.isfinite(value):  # nan, inf and 1e400 (which float() makes inf), as the COCO reader
        raise AnnotationError(f"{where}: <{tag}> must be a finite number, got {plain(text)}")
    return value


def _size_hw(root: ET.Element, source: str) -> tuple[int, int] | None:
    size = root.find("size")
    if size is None:
        return None
    w, h = _number(size, "width", source), _number(size, "height", source)
    if not (math.isfinite(w) and math.isfinite(h)) or w <= 0 or h <= 0 or w != int(w) or h != int(h):
        raise AnnotationError(f"{source}: <size> must be positive whole pixels, got {w:g}x{h:g}")
    return int(h), int(w)


def _difficult(obj: ET.Element, where: str) -> bool:
    node = obj.find("difficult")
    text = (node.text or "").strip() if node is not None else ""
    if text in ("", "0"):
        return False
    if text == "1":
        return True
    raise AnnotationError(f"{where}: <difficult> must be 0 or 1, got {plain(text)}")


def _object(obj: ET.Element, k: int, source: str) -> AnnotatedBox:
    name = _text(obj, "name", f"{source} object {k}")
    where = f"{source} object {k} ({plain(name)})"
    bb = obj.find("bndbox")  # the object's own box; <part> boxes sit one level deeper
    if bb is None:
        raise AnnotationError(f"{where}: missing <bndbox>")
    xmin, ymin, xmax, ymax = (_number(bb, t, where) for t in ("xmin", "ymin", "xmax", "ymax"))
    # 1-based inclusive VOC pixels -> 0-based corners.
    return AnnotatedBox(name=name, box_xyxy=(xmin - 1, ymin - 1, xmax, ymax), difficult=_difficult(obj, where))


def _parse_root(data: bytes, source: str) -> ET.Element:
    try:
        return SafeET.fromstring(data, forbid_dtd=True)
    except defusedxml.DTDForbidden:
        raise AnnotationError(f"{source}: refused, the XML declares a DTD (entity expansion and external "
                              f"references come in that way; a VOC annotation has none)") from None
    except (defusedxml.EntitiesForbidden, defusedxml.ExternalReferenceForbidden, defusedxml.NotSupportedError):
        raise AnnotationError(f"{source}: refused, the XML uses entities or external references") from None
    except ET.ParseError as e:
        raise AnnotationError(f"{source}: not valid XML ({e})") from None
    except (RecursionError, MemoryError, ValueError) as e:
        raise AnnotationError(f"{source}: not valid XML ({type(e).__name__})") from None


def read_voc_xml(src: bytes | str | os.PathLike, source: str | None = None,
                 max_bytes: int = MAX_VOC_XML_BYTES, max_boxes: int = MAX_BOXES_PER_IMAGE) -> VOCAnnotation:
    """Read one VOC XML annotation.

    Args:
        src: the file's bytes, or its path.
        source: the name to give in messages (default: the path, or "annotation.xml").
        max_bytes: refuse larger files before parsing.
        max_boxes: refuse files with more <object>s.
    Returns:
        VOCAnnotation with every object (box_xyxy 0-based pixels, difficult flagged).
    Raises:
        AnnotationError naming the file for: too large, empty, not XML, a DTD/entity,
        too many objects, a missing <name>/<bndbox>/coordinate, a coordinate that is not
        a number, <size> not positive whole pixels, <difficult> not 0/1.
    """
    if source is None:
        source = "annotation.xml" if isinstance(src, (bytes, bytearray)) else str(src)
    root = _parse_root(read_bytes_limited(src, source, max_bytes), source)
    objects = root.findall("object")
    check_box_count(len(objects), source, max_boxes)
    filename = root.findtext("filename")
    return VOCAnnotation(
        source=source,
        filename=filename.strip() if filename and filename.strip() else None,
        image_hw=_size_hw(root, source),
        objects=tuple(_object(obj, k, source) for k, obj in enumerate(objects)),
    )


def _voc_element(filename: str, image_hw: tuple[int, int], objects) -> ET.Element:
    ann = ET.Element("annotation")
    ET.SubElement(ann, "folder").text = "JPEGImages"
    ET.SubElement(ann, "filename").text = filename
    sz = ET.SubElement(ann, "size")
    for tag, v in (("width", image_hw[1]), ("height", image_hw[0]), ("depth", 3)):
        ET.SubElement(sz, tag).text = str(v)
    for o in objects:
        obj = ET.SubElement(ann, "object")
        ET.SubElement(obj, "name").text = o.name
        # VOC has no crowd: a crowd region is written difficult, which the devkit neither
        # counts nor penalises (COCO's writer writes difficult as iscrowd, the same rule).
        ET.SubElement(obj, "difficult").text = "1" if o.difficult or o.crowd else "0"
        bb = ET.SubElement(obj, "bndbox")
        x1, y1, x2, y2 = o.box_xyxy
        # 0-based corners -> 1-based inclusive VOC pixels: xmin = x1 + 1, xmax = x2.
        for tag, v in zip(("xmin", "ymin", "xmax", "ymax"), (x1 + 1, y1 + 1, x2, y2)):
            ET.SubElement(bb, tag).text = f"{v:.1f}"
    return ann


def write_voc_xml(path: str | os.PathLike, filename: str, image_hw: tuple[int, int], objects) -> Path:
    """Write one VOC XML annotation atomically (temp file + os.replace).

    Args:
        path: the .xml file to write.
        filename: the image's file name for <filename> (by convention `<id>.jpg`).
        image_hw: (H, W) of the image in pixels, for <size>.
        objects: AnnotatedBox records, box_xyxy in 0-based pixels (written 1-based).
    Returns:
        The path written.
    """
    return write_bytes_atomic(path, voc_xml_bytes(filename, image_hw, objects))


def voc_xml_bytes(filename: str, image_hw: tuple[int, int], objects) -> bytes:
    """One VOC XML annotation as bytes (what `write_voc_xml` writes; the app's download).

    Args:
        filename: the image's file name for <filename>.
        image_hw: (H, W) of the image in pixels, for <size>.
        objects: AnnotatedBox records, box_xyxy in 0-based pixels (written 1-based, one
            decimal); difficult or crowd ones are written <difficult>1.
    Returns:
        The XML document (ASCII bytes; other characters as character references).
    """
    buf = io.BytesIO()
    ET.ElementTree(_voc_element(filename, image_hw, objects)).write(buf)  # ASCII, other text as &#NNN;
    return buf.getvalue()
