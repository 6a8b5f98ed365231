"""The annotation formats, one owner each: VOC XML and COCO JSON (read and write).

Every reader of annotations in the project goes through here: the VOC and COCO dataset
readers, the app's annotation upload, the class-list auto-detection of `ssd.train`, and
the procedural exporter. Nothing else parses XML.
"""
from ssd.data.formats.base import (MAX_BOXES_PER_IMAGE, MAX_COCO_JSON_BYTES, MAX_VOC_XML_BYTES, AnnotatedBox,
                                   AnnotationError, is_ground_truth)
from ssd.data.formats.coco_json import (COCOAnnotations, COCOImage, coco_json_bytes, read_coco_json,
                                        write_coco_json)
from ssd.data.formats.voc_xml import VOCAnnotation, read_voc_xml, voc_xml_bytes, write_voc_xml

__all__ = [
    "MAX_BOXES_PER_IMAGE", "MAX_COCO_JSON_BYTES", "MAX_VOC_XML_BYTES", "AnnotatedBox", "AnnotationError",
    "is_ground_truth", "COCOAnnotations", "COCOImage", "coco_json_bytes", "read_coco_json", "write_coco_json",
    "VOCAnnotation", "read_voc_xml", "voc_xml_bytes", "write_voc_xml",
]
