"""How the tiny multimodal demo (data/mllm_demo.json + data/mllm_demo_data/) was made: shapes drawn with PIL.

Every image is a plain coloured shape on a white background, so each answer is true by construction
("a red circle"). `build_mllm_demo(out_dir)` redraws the images and returns the rows; the committed
files were written by it. Not here: the text demo files (they are plain JSON in data/).
"""
from __future__ import annotations

from pathlib import Path

COLOURS = {"red": (220, 40, 40), "blue": (40, 80, 220), "green": (40, 160, 60), "yellow": (235, 200, 30)}
SHAPES = ("circle", "square", "triangle")
IMAGE_SIZE = 96  # pixels per side


def draw_shape(shape: str, colour: str, size: int = IMAGE_SIZE):
    """A PIL image of one filled `shape` in `colour` on white."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(image)
    pad = size // 6
    box = (pad, pad, size - pad, size - pad)
    fill = COLOURS[colour]
    if shape == "circle":
        draw.ellipse(box, fill=fill)
    elif shape == "square":
        draw.rectangle(box, fill=fill)
    elif shape == "triangle":
        draw.polygon([(size // 2, pad), (size - pad, size - pad), (pad, size - pad)], fill=fill)
    else:
        raise ValueError(f"unknown shape {shape!r}; use one of {SHAPES}")
    return image


def build_mllm_demo(out_dir: str | Path, folder: str = "mllm_demo_data") -> list[dict]:
    """Draw every (shape, colour) image into out_dir/folder and return mllm_demo rows (messages + images)."""
    out = Path(out_dir) / folder
    out.mkdir(parents=True, exist_ok=True)
    files = {}
    for shape in SHAPES:
        for colour in COLOURS:
            name = f"{colour}_{shape}.png"
            draw_shape(shape, colour).save(out / name, optimize=True)
            files[shape, colour] = f"{folder}/{name}"
    rows = []
    questions = ["<image>What shape is in this picture, and what colour is it?",
                 "<image>Describe this image in one sentence.",
                 "<image>What colour is the shape?"]
    for i, ((shape, colour), path) in enumerate(files.items()):
        question = questions[i % len(questions)]
        if "colour is the shape" in question:
            answer = f"The {shape} is {colour}."
        elif "Describe" in question:
            answer = f"The image shows a {colour} {shape} on a plain white background."
        else:
            answer = f"It is a {colour} {shape}."
        rows.append({"messages": [{"role": "user", "content": question},
                                  {"role": "assistant", "content": answer}], "images": [path]})
    pairs = [(("circle", "red"), ("circle", "blue")), (("square", "green"), ("triangle", "green")),
             (("triangle", "yellow"), ("square", "red")), (("circle", "yellow"), ("circle", "yellow"))]
    for a, b in pairs:
        same_shape, same_colour = a[0] == b[0], a[1] == b[1]
        if same_shape and same_colour:
            answer = f"Yes. Both pictures show a {a[1]} {a[0]}."
        elif same_shape:
            answer = f"They show the same shape, a {a[0]}, in different colours: {a[1]} and {b[1]}."
        elif same_colour:
            answer = f"No. Both shapes are {a[1]}, but the first is a {a[0]} and the second is a {b[0]}."
        else:
            answer = f"No. The first is a {a[1]} {a[0]} and the second is a {b[1]} {b[0]}."
        rows.append({"messages": [{"role": "user", "content": "<image><image>Do these two pictures show the same thing?"},
                                  {"role": "assistant", "content": answer}], "images": [files[a], files[b]]})
    rows.append({"messages": [{"role": "user", "content": "<image>How many corners does this shape have?"},
                              {"role": "assistant", "content": "It is a triangle, so it has three corners."},
                              {"role": "user", "content": "And what colour is it?"},
                              {"role": "assistant", "content": "It is blue."}],
                 "images": [files["triangle", "blue"]]})
    return rows
