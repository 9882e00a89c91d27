"""Decoding one image file with Pillow and NumPy alone: upright, RGB (transparency on white,
16-bit scaled), short side resized, centre-cropped, as a uint8 array. No torch here, so Ray's decode
workers (trainables/decoded.py) start without the seconds an import of torch takes on these cores;
trainables/images.py wraps it for the rest of the code.
"""

import io
import re
import struct
import warnings
import zlib

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from trainables.basics import UserError

ALPHA_MODES = {"RGBA", "LA", "PA", "RGBa", "La"}  # with an alpha channel (PA: palette + alpha; RGBa, La: premultiplied)
BACKGROUND = (255, 255, 255)  # what transparent pixels show: white, as a viewer or a web page shows them
REDUCING_GAP = 3.0  # resize a big non-JPEG by an integer reduce() first, then resample the last <= 3x (Pillow's advice)
# what a malformed file makes Pillow raise while opening or decoding it (struct / zlib / EOF: damaged chunks)
DECODE_ERRORS = (OSError, UnidentifiedImageError, SyntaxError, ValueError, EOFError, struct.error, zlib.error)


def too_many_pixels(path: str, pixels: int, limit: int) -> UserError:
    return UserError(
        f"image {path} is {pixels:,} pixels, over the {limit:,} limit Pillow puts on one image "
        "(a guard against decompression bombs); shrink it or remove it"
    )


def bomb_error(path: str, error: Image.DecompressionBombError) -> UserError:
    """Pillow refuses in Image.open (before we see the size) above twice its limit; its message holds the count."""
    found = re.search(r"\((\d+) pixels\)", str(error))
    pixels = int(found.group(1)) if found else 2 * Image.MAX_IMAGE_PIXELS + 1
    return too_many_pixels(path, pixels, Image.MAX_IMAGE_PIXELS)


def check_pixels(path: str, img: Image.Image) -> None:
    """Refuse above Image.MAX_IMAGE_PIXELS ourselves: between one and two times the limit Pillow only
    warns, and would decode a file that may be a bomb."""
    limit = Image.MAX_IMAGE_PIXELS
    pixels = img.width * img.height
    if limit is not None and pixels > limit:
        raise too_many_pixels(path, pixels, limit)


def sixteen_to_eight(img: Image.Image) -> Image.Image:
    """16-bit greyscale (mode I;16*, or I as Pillow opens some 16-bit files) -> L, 0..65535 scaled to
    0..255. Pillow's own convert clips instead: every value above 255, nearly the whole range, turns white.
    A fixed scale (not each image's min..max) keeps a dark image dark and brightness comparable across files."""
    values = np.clip(np.asarray(img), 0, 65535).astype(np.uint32)  # I;16B is big-endian; I is int32, maybe < 0
    return Image.fromarray(((values * 255 + 32767) // 65535).astype(np.uint8))  # round(v / 257); fits in 32 bits


def to_rgb(img: Image.Image) -> Image.Image:
    """Any mode -> RGB. Transparent pixels are composited onto white rather than dropped: dropping alpha
    shows whatever colour the encoder left under them (often black, sometimes noise), so a logo or a product
    cut-out would sit on a background no viewer ever showed, and one differing from file to file."""
    if img.mode == "I" or img.mode.startswith("I;16"):
        return sixteen_to_eight(img).convert("RGB")
    if img.mode in ALPHA_MODES or "transparency" in img.info:  # the latter: P or L or RGB with a tRNS colour
        rgba = img.convert("RGBA")
        background = Image.new("RGB", rgba.size, BACKGROUND)
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return img.convert("RGB")


def one_line(error: Exception) -> str:
    return " ".join(str(error).split()) or type(error).__name__


def decode_array(path: str, size: int, content: bytes | None = None) -> np.ndarray:
    """One file -> uint8 array (3, size, size): the first frame, turned upright as its EXIF orientation says,
    converted to RGB (see to_rgb), short side resized to `size`, centre-cropped square. A file Pillow
    cannot decode, or one above its pixel limit, raises a UserError naming it."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # check_pixels refuses, naming the file
            # `content`: the file's bytes, read elsewhere (a decode task on a node without the data)
            with Image.open(io.BytesIO(content) if content is not None else path) as img:  # GIF, TIFF: the first frame
                check_pixels(path, img)
                # a JPEG decodes straight at 1/2, 1/4 or 1/8 scale, never below `size` (a no-op for other formats)
                img.draft("RGB", (size, size))
                img = to_rgb(ImageOps.exif_transpose(img))
            w, h = img.size
            scale = size / min(w, h)
            new_size = (max(size, round(w * scale)), max(size, round(h * scale)))
            img = img.resize(new_size, Image.BILINEAR, reducing_gap=REDUCING_GAP)
            left, top = (img.width - size) // 2, (img.height - size) // 2
            img = img.crop((left, top, left + size, top + size))
            array = np.asarray(img, dtype=np.uint8)
    except Image.DecompressionBombError as e:
        raise bomb_error(path, e) from None
    except DECODE_ERRORS as e:
        raise UserError(f"unreadable image {path}: {one_line(e)}") from None
    return np.ascontiguousarray(array.transpose(2, 0, 1))


def decode_chunk(
    paths: list[str], size: int, contents: list[bytes] | None = None, into: str | None = None, start: int = 0
) -> tuple[np.ndarray | None, dict[int, str]]:
    """Decode `paths` (or their `contents`, read by the driver) -> (uint8 array of all of them, zeros
    where one failed; {position: error line}). With `into` (a .npy file on this node) the images are
    written straight into its rows from `start` and the array returned is None: a decode task on the
    driver's node then sends back only its errors, not its pixels through the object store."""
    shape = (len(paths), 3, size, size)
    # the file's rows start as zeros (open_memmap's w+), as a fresh array does: a failed image stays zero
    rows = np.load(into, mmap_mode="r+")[start : start + len(paths)] if into else np.zeros(shape, dtype=np.uint8)
    errors = {}
    for i, path in enumerate(paths):
        try:
            rows[i] = decode_array(path, size, contents[i] if contents else None)
        except UserError as e:
            errors[i] = str(e)
    if into is None:
        return rows, errors
    rows.flush()
    return None, errors
