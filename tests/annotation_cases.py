"""Bad annotation inputs shared by the reader tests (tests/test_data_formats_*.py) and the
app's upload tests (tests/test_inputs_ground_truth.py): each case is (file bytes, the
words its one error must say). Hostile XML (entity expansion, external entities) and
issue 14's malformed COCO JSON included."""
import json

from ssd.data.formats import MAX_BOXES_PER_IMAGE

OBJ = ("<object><name>{name}</name><difficult>{diff}</difficult><bndbox><xmin>{0}</xmin><ymin>{1}</ymin>"
       "<xmax>{2}</xmax><ymax>{3}</ymax></bndbox></object>")


def voc(objects="", size="<size><width>64</width><height>48</height><depth>3</depth></size>"):
    return f"<annotation><filename>a.jpg</filename>{size}{objects}</annotation>".encode()


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
<!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
<!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
<!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
<!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
<!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
<!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">]>
<annotation><object><name>&lol9;</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>9</xmax><ymax>9</ymax>
</bndbox></object></annotation>"""
EXTERNAL_ENTITY = b"""<?xml version="1.0"?><!DOCTYPE a [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<annotation><object><name>&xxe;</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>9</xmax><ymax>9</ymax>
</bndbox></object></annotation>"""
EXTERNAL_DTD = b"""<?xml version="1.0"?><!DOCTYPE annotation SYSTEM "http://127.0.0.1:1/voc.dtd">
<annotation></annotation>"""


# The hostile and malformed inputs, each with the words its one error must say.
BAD_VOC = [
    (BILLION_LAUGHS, "DTD"),
    (EXTERNAL_ENTITY, "DTD"),
    (EXTERNAL_DTD, "DTD"),
    (b"", "empty file"),
    (b"   \n", "empty file"),
    (b"this is not xml", "not valid XML"),
    (voc(OBJ.format(1, 1, 9, 9, name="dog", diff=0))[:70], "not valid XML"),  # truncated
    ("<annotation><object><name>caf\u00e9</name></object></annotation>".encode("latin-1"), "not valid XML"),
    (voc("<object><bndbox/></object>"), "missing <name>"),
    (voc("<object><name>dog</name></object>"), "missing <bndbox>"),
    (voc(OBJ.format(1, "six", 9, 9, name="dog", diff=0)), "<ymin> is not a number ('six')"),
    (voc(OBJ.format(1, 1, 9, "", name="dog", diff=0)), "missing <ymax>"),
    (voc(OBJ.format(1, 1, 9, 9, name="dog", diff="maybe")), "<difficult> must be 0 or 1"),
    (voc(size="<size><width>0</width><height>48</height></size>"), "<size> must be positive whole pixels"),
    (voc(size="<size><width>6.5</width><height>48</height></size>"), "<size> must be positive whole pixels"),
    (voc(size="<size><height>48</height></size>"), "missing <width>"),
    (voc(OBJ.format(1, 1, 9, 9, name="dog", diff=0) * (MAX_BOXES_PER_IMAGE + 1)), "over the limit of 1,000 boxes"),
]


CATS = [{"id": 18, "name": "dog"}, {"id": 3, "name": "car"}]


def doc(annotations=(), images=None, cats=CATS, **extra):
    images = images if images is not None else [{"id": 1, "file_name": "x/a.png", "width": 64, "height": 48}]
    return json.dumps({"images": images, "annotations": list(annotations), "categories": cats, **extra}).encode()


def ann(aid=1, image_id=1, cat=18, bbox=(10, 5, 30, 25), **kw):
    return {"id": aid, "image_id": image_id, "category_id": cat, "bbox": list(bbox), **kw}


def deep(n):
    return ("[" * n + "]" * n).encode()


# Issue 14: each malformed COCO JSON gives one clear error naming the file and the problem.
BAD_COCO = [
    (doc([ann(), "not an object"]), r"annotations\[1\] must be an object, got str"),
    (doc(cats=["dog", "car"]), r"categories\[0\] must be an object, got str"),
    (doc(cats=[{"id": "18", "name": "dog"}]), r"categories\[0\] needs an integer 'id'"),
    (doc(cats=[{"id": 18, "name": 5}]), r"categories\[0\] needs a text 'name'"),
    (doc(cats=[{"id": 18, "name": "a"}, {"id": 18, "name": "b"}]), r"duplicate category id\(s\) \[18\]"),
    (doc(images=[{"id": True, "file_name": "a.png"}]), r"images\[0\] needs an integer 'id'"),
    (doc(images=[{"id": 1}]), r"images\[0\] needs a text 'file_name'"),
    (doc(images=[{"id": 1, "file_name": "a", "width": -4, "height": 3}]), "width/height must be positive"),
    (doc([{"id": 1, "image_id": [1], "bbox": [0, 0, 1, 1]}]), r"annotations\[0\] needs an integer 'image_id'"),
    (b'{"images": [{"id": 1' + b"1" * 5000 + b', "file_name": "a"}]}', "JSON value refused"),  # 5000-digit id
    (deep(100_000), "nested too deeply"),
    (b"[1, 2]", "a COCO file is a JSON object, got a list"),
    (b'{"images": [], "categories": []}', "missing list 'annotations'"),
    (doc([ann()])[:-9], "not valid JSON .*truncated"),
    ('{"images": [{"file_name": "caf\u00e9"}]}'.encode("latin-1"), "not UTF-8 text"),
    (b"", "empty file"),
]


