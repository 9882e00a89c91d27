"""trainables/decode.py: the torch-free decoder Ray's decode workers import (its pictures are tested
through images.decode_image in tests/test_images.py)."""

import subprocess
import sys

import numpy as np
from PIL import Image

from trainables import decode, images


def test_the_decoder_imports_no_torch():
    # a decode worker imports this module alone: torch would add seconds to each worker's start
    code = "import sys, trainables.decode; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_a_chunk_written_into_a_file_is_the_chunk_returned(tmp_path):
    paths = []
    for i in range(3):
        paths.append(str(tmp_path / f"{i}.png"))
        Image.fromarray(np.full((20, 30, 3), 40 * i, dtype=np.uint8)).save(paths[-1])
    paths.append(str(tmp_path / "bad.jpg"))
    (tmp_path / "bad.jpg").write_bytes(b"not an image")
    returned, errors = decode.decode_chunk(paths, 8)
    target = np.lib.format.open_memmap(tmp_path / "rows.npy", mode="w+", dtype=np.uint8, shape=(6, 3, 8, 8))
    written, same_errors = decode.decode_chunk(paths, 8, into=str(tmp_path / "rows.npy"), start=2)
    assert written is None and same_errors == errors and list(errors) == [3] and "bad.jpg" in errors[3]
    assert np.array_equal(target[2:6], returned) and not target[:2].any()
    assert np.array_equal(returned[1], images.decode_image(paths[1], 8).numpy())
