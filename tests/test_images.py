"""Tests for trainables.images: the seeded stratified split, image decoding, ImageFolder listing and
data-dir checks, and the training / evaluation batches (on tiny images generated in tmp_path)."""

import numpy as np
import pytest
import torch
from PIL import Image

from trainables import images
from trainables.basics import UserError

torch.set_num_threads(1)


def save_image(path, size=(12, 12), mode="RGB", color=None, fmt=None):
    """A small image with some structure (a gradient), so crops and resizes are not trivial."""
    path.parent.mkdir(parents=True, exist_ok=True)
    w, h = size
    x = np.linspace(0, 255, w, dtype=np.uint8)[None, :].repeat(h, 0)
    y = np.linspace(255, 0, h, dtype=np.uint8)[:, None].repeat(w, 1)
    rgb = np.stack([x, y, np.full((h, w), 128 if color is None else color, np.uint8)], axis=-1)
    img = Image.fromarray(rgb, "RGB")
    if mode == "L":
        img = img.convert("L")
    elif mode == "P":
        img = img.convert("P", palette=Image.ADAPTIVE, colors=16)
    elif mode == "RGBA":
        img = img.convert("RGBA")
        img.putalpha(Image.fromarray(np.full((h, w), 100, np.uint8), "L"))
    img.save(path, format=fmt)
    return path


def make_tree(root, classes=("hotdog", "not-hotdog"), per_class=3, splits=("train", "test")):
    for split in splits:
        for i, name in enumerate(classes):
            for j in range(per_class):
                save_image(root / split / name / f"{j}.png", color=40 * i + j)
    return root


# --- stratified_split -------------------------------------------------------------------------------


def labels_for(counts):
    return torch.tensor([label for label, n in enumerate(counts) for _ in range(n)], dtype=torch.int64)


@pytest.mark.parametrize(
    "counts, fraction",
    [([50, 50], 0.2), ([100, 30, 7], 0.25), ([40, 60], 0.5), ([2, 2, 2], 0.2), ([2, 9], 0.9), ([3, 1000], 0.1)],
)
def test_stratified_split_proportions_and_partition(counts, fraction):
    labels = labels_for(counts)
    train, val = images.stratified_split(labels, fraction, seed=0)
    assert train.dtype == torch.int64 and val.dtype == torch.int64
    t, v = set(train.tolist()), set(val.tolist())
    assert not t & v
    assert t | v == set(range(len(labels)))
    assert len(t) + len(v) == len(labels)  # no duplicates either
    assert torch.equal(train, train.sort().values) and torch.equal(val, val.sort().values)
    for label, n in enumerate(counts):
        n_val = int((labels[val] == label).sum())
        n_train = int((labels[train] == label).sum())
        assert n_val + n_train == n
        assert n_val >= 1 and n_train >= 1  # every class on both sides
        if n >= 10:
            assert abs(n_val - fraction * n) <= 1


def test_stratified_split_two_images_per_class():
    labels = labels_for([2, 2])
    for seed in range(5):
        train, val = images.stratified_split(labels, 0.2, seed)
        assert sorted(labels[train].tolist()) == [0, 1]
        assert sorted(labels[val].tolist()) == [0, 1]


def test_stratified_split_is_seeded():
    labels = labels_for([60, 40])
    a = images.stratified_split(labels, 0.2, seed=7)
    b = images.stratified_split(labels, 0.2, seed=7)
    c = images.stratified_split(labels, 0.2, seed=8)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[1], c[1])


def test_stratified_split_interleaved_labels():
    labels = torch.tensor([0, 1, 2] * 20)
    train, val = images.stratified_split(labels, 0.3, seed=1)
    assert torch.bincount(labels[val]).tolist() == [6, 6, 6]
    assert torch.bincount(labels[train]).tolist() == [14, 14, 14]


# --- decode_image -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "mode, suffix",
    [("RGB", ".png"), ("RGB", ".jpg"), ("L", ".png"), ("L", ".jpg"), ("P", ".png"), ("P", ".gif"), ("RGBA", ".png")],
)
def test_decode_image_modes(tmp_path, mode, suffix):
    path = save_image(tmp_path / f"img{suffix}", size=(12, 12), mode=mode)
    with Image.open(path) as img:
        assert img.mode == mode
    out = images.decode_image(str(path), 10)
    assert out.dtype == torch.uint8 and out.shape == (3, 10, 10)
    if mode == "L":  # grayscale becomes three equal channels
        assert torch.equal(out[0], out[1]) and torch.equal(out[1], out[2])


def test_decode_image_keeps_the_picture(tmp_path):
    path = save_image(tmp_path / "a.png", size=(12, 12))
    out = images.decode_image(str(path), 12)  # same size: no resampling
    with Image.open(path) as img:
        expected = torch.from_numpy(np.array(img.convert("RGB"))).permute(2, 0, 1)
    assert torch.equal(out, expected)


@pytest.mark.parametrize("size", [(20, 16), (16, 20), (40, 7), (7, 40), (13, 12)])
def test_decode_image_non_square(tmp_path, size):
    path = save_image(tmp_path / "wide.png", size=size)
    for target in (8, 12, 24):
        out = images.decode_image(str(path), target)
        assert out.shape == (3, target, target) and out.dtype == torch.uint8


def test_decode_image_center_crops(tmp_path):
    # 30 x 10: left third red, middle green, right blue; a centre crop to 10 x 10 is all green
    rgb = np.zeros((10, 30, 3), np.uint8)
    rgb[:, :10, 0] = rgb[:, 10:20, 1] = rgb[:, 20:, 2] = 255
    path = tmp_path / "stripes.png"
    Image.fromarray(rgb).save(path)
    out = images.decode_image(str(path), 10)
    assert out[1].min() == 255 and out[0].max() == 0 and out[2].max() == 0


def test_truncated_jpeg_raises(tmp_path):
    good = save_image(tmp_path / "good.jpg", size=(64, 64))
    bad = tmp_path / "cut.jpg"
    bad.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    with pytest.raises(UserError) as caught:
        images.decode_image(str(bad), 12)
    assert str(bad) in str(caught.value)


@pytest.mark.parametrize("content", [b"this is not an image\n", b""])
def test_text_file_named_jpg_raises(tmp_path, content):
    path = tmp_path / "x.jpg"
    path.write_bytes(content)
    with pytest.raises(UserError) as caught:
        images.decode_image(str(path), 12)
    assert str(path) in str(caught.value)


# --- decode_image on the files users really have ---------------------------------------------------

RED, BLUE, GREEN, WHITE = (255, 0, 0), (0, 0, 255), (0, 255, 0), (255, 255, 255)


def solid(path, color, size=(16, 16), mode="RGB", **save):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, color).save(path, **save)
    return path


def corner_means(out):
    """Mean RGB of the middle of each quadrant of a decoded (3, S, S) image, keyed tl / tr / bl / br (the
    middle only: resizing and JPEG blur the edges where two quadrants meet)."""
    q = out.shape[1] // 4
    a, b = slice(q // 2, q + q // 2), slice(3 * q - q // 2, 3 * q + q // 2)
    parts = {"tl": out[:, a, a], "tr": out[:, a, b], "bl": out[:, b, a], "br": out[:, b, b]}
    return {k: v.float().mean(dim=(1, 2)) for k, v in parts.items()}


def near(rgb, expected, tolerance=12):
    return bool((rgb - torch.tensor(expected, dtype=torch.float32)).abs().max() <= tolerance)


# where the stored top-left corner is shown under each EXIF orientation (1 upright ... 8 rotated 90 CCW)
ORIENTED_CORNER = {1: "tl", 2: "tr", 3: "br", 4: "bl", 5: "tl", 6: "tr", 7: "br", 8: "bl"}


@pytest.mark.parametrize("orientation", sorted(ORIENTED_CORNER))
def test_exif_orientation_is_applied(tmp_path, orientation):
    # a phone stores the sensor's pixels and says in EXIF how to turn them; red marks the stored top-left
    img = Image.new("RGB", (32, 32), BLUE)
    img.paste(RED, (0, 0, 16, 16))
    exif = Image.Exif()
    exif[0x0112] = orientation  # the Orientation tag
    path = tmp_path / "phone.jpg"
    img.save(path, exif=exif, quality=95)
    corners = corner_means(images.decode_image(str(path), 16))
    red = ORIENTED_CORNER[orientation]
    assert near(corners[red], RED)
    assert all(near(rgb, BLUE) for corner, rgb in corners.items() if corner != red)


def test_exif_rotation_turns_a_wide_photo_tall(tmp_path):
    # stored 40 x 20, left half red; orientation 6 (turn 90 degrees clockwise) shows it 20 x 40 with red on top,
    # so the centre crop has red above blue, not red left of blue
    img = Image.new("RGB", (40, 20), BLUE)
    img.paste(RED, (0, 0, 20, 20))
    exif = Image.Exif()
    exif[0x0112] = 6
    img.save(tmp_path / "wide.jpg", exif=exif, quality=95)
    corners = corner_means(images.decode_image(str(tmp_path / "wide.jpg"), 20))
    assert near(corners["tl"], RED) and near(corners["tr"], RED)
    assert near(corners["bl"], BLUE) and near(corners["br"], BLUE)


@pytest.mark.parametrize("cmyk", [(0, 255, 255, 0), (0, 128, 255, 64), (200, 30, 0, 10)])
def test_cmyk_jpeg_decodes_to_its_rgb(tmp_path, cmyk):
    path = solid(tmp_path / "print.jpg", cmyk, mode="CMYK", quality=95)
    with Image.open(path) as img:
        assert img.mode == "CMYK"
    c, m, y, k = cmyk
    expected = [round((255 - v) * (255 - k) / 255) for v in (c, m, y)]  # the naive conversion Pillow uses
    out = images.decode_image(str(path), 8)
    assert near(out.float().mean(dim=(1, 2)), expected, tolerance=6)


def sixteen_bit_ramp(path, suffix_mode):
    values = np.linspace(0, 65535, 64).round().astype(np.uint16).reshape(8, 8)
    img = Image.fromarray(values) if suffix_mode == "I;16" else Image.fromarray(values.astype(np.int32))
    img.save(path)
    return values


@pytest.mark.parametrize("name, mode", [("depth.png", "I;16"), ("scan.tif", "I")])
def test_sixteen_bit_greyscale_is_scaled_not_clipped(tmp_path, name, mode):
    path = tmp_path / name
    values = sixteen_bit_ramp(path, mode)
    with Image.open(path) as img:
        assert img.mode == mode
        clipped = np.asarray(img.convert("RGB"))[..., 0]
    assert (clipped == 255).mean() > 0.9  # what a plain convert("RGB") makes of it: nearly all white
    out = images.decode_image(str(path), 8)  # same size: no resampling, the pixels themselves
    assert torch.equal(out[0], out[1]) and torch.equal(out[1], out[2])
    expected = torch.from_numpy(np.round(values / 257).astype(np.uint8))
    assert (out[0].int() - expected.int()).abs().max() <= 1
    flat = out[0].flatten()
    assert flat[0] == 0 and flat[-1] == 255 and bool((flat[1:] >= flat[:-1]).all())  # the ramp keeps its order


def test_greyscale_with_alpha_composites_onto_white(tmp_path):
    # grey 50 everywhere; alpha 255 on the left half, 0 on the right, except a half-transparent bottom-right
    alpha = np.zeros((16, 16), np.uint8)
    alpha[:, :8] = 255
    alpha[8:, 8:] = 128
    img = Image.merge("LA", (Image.new("L", (16, 16), 50), Image.fromarray(alpha)))
    img.save(tmp_path / "la.png")
    with Image.open(tmp_path / "la.png") as check:
        assert check.mode == "LA"
    corners = corner_means(images.decode_image(str(tmp_path / "la.png"), 16))
    assert near(corners["tl"], (50,) * 3, 1) and near(corners["bl"], (50,) * 3, 1)
    assert near(corners["tr"], WHITE, 1)  # transparent: white, not the grey hidden under it
    blend = round(50 * 128 / 255 + 255 * 127 / 255)
    assert near(corners["br"], (blend,) * 3, 1)


@pytest.mark.parametrize("suffix", [".png", ".gif"])
def test_palette_transparency_composites_onto_white(tmp_path, suffix):
    # index 0 is black and marked transparent (tRNS in a PNG, the transparency index in a GIF); index 1 is blue
    img = Image.new("P", (16, 16), 0)
    img.putpalette([0, 0, 0, 0, 0, 255] + [0] * 762)
    img.paste(1, (0, 0, 8, 16))
    path = tmp_path / f"icon{suffix}"
    img.save(path, transparency=0)
    with Image.open(path) as check:
        assert check.mode == "P" and check.info.get("transparency") is not None
    corners = corner_means(images.decode_image(str(path), 16))
    assert near(corners["tl"], BLUE, 0) and near(corners["bl"], BLUE, 0)
    assert near(corners["tr"], WHITE, 0) and near(corners["br"], WHITE, 0)  # not the black under the tRNS index


def test_rgba_composites_onto_white(tmp_path):
    rgba = np.zeros((16, 16, 4), np.uint8)  # fully transparent black, as most editors export a cut-out's background
    rgba[:, :8] = (255, 0, 0, 255)
    Image.fromarray(rgba).save(tmp_path / "cutout.png")
    corners = corner_means(images.decode_image(str(tmp_path / "cutout.png"), 16))
    assert near(corners["tl"], RED, 0) and near(corners["tr"], WHITE, 0)


@pytest.mark.parametrize("suffix", [".gif", ".tif"])
def test_multi_frame_files_give_the_first_frame(tmp_path, suffix):
    frames = [Image.new("RGB", (16, 16), color) for color in (RED, GREEN, BLUE)]
    path = tmp_path / f"animated{suffix}"
    frames[0].save(path, save_all=True, append_images=frames[1:])
    with Image.open(path) as check:
        assert check.n_frames == 3
    out = images.decode_image(str(path), 8)
    assert near(out.float().mean(dim=(1, 2)), RED, 2)


def assert_refused(path, *words):
    """decode_image raises a UserError: one line, naming the file (and `words`)."""
    with pytest.raises(UserError) as caught:
        images.decode_image(str(path), 12)
    message = str(caught.value)
    assert "\n" not in message and str(path) in message
    assert all(w in message for w in words), message
    return message


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_truncated_files_are_refused_in_one_line(tmp_path, suffix):
    good = save_image(tmp_path / f"good{suffix}", size=(64, 64))
    data = good.read_bytes()
    bad = tmp_path / f"cut{suffix}"
    bad.write_bytes(data[: len(data) // 2])
    assert_refused(bad, "truncated")


def test_truncated_jpeg_is_refused_at_any_size(tmp_path):
    # the draft (reduced-scale) decode must not paper over the missing data either
    good = save_image(tmp_path / "big.jpg", size=(400, 300))
    (tmp_path / "cut.jpg").write_bytes(good.read_bytes()[:-300])
    for size in (12, 50, 160):
        with pytest.raises(UserError, match="truncated"):
            images.decode_image(str(tmp_path / "cut.jpg"), size)


@pytest.mark.parametrize("limit", [150, 300])  # 400 pixels: over twice the limit (Pillow raises), or under (it warns)
def test_decompression_bomb_is_refused_with_its_pixel_count(tmp_path, monkeypatch, recwarn, limit):
    path = save_image(tmp_path / "bomb.png", size=(20, 20))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", limit)  # restored after the test
    assert_refused(path, "is 400 pixels", f"over the {limit} limit")
    assert not [w for w in recwarn if issubclass(w.category, Image.DecompressionBombWarning)]


def test_pixel_limit_message_groups_digits(tmp_path, monkeypatch):
    path = save_image(tmp_path / "wide.png", size=(2000, 1))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1500)
    assert_refused(path, "is 2,000 pixels, over the 1,500 limit")


def test_pixel_limit_off_and_at_the_limit(tmp_path, monkeypatch):
    path = save_image(tmp_path / "ok.png", size=(20, 20))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 400)  # exactly at the limit is allowed, as in Pillow
    assert images.decode_image(str(path), 8).shape == (3, 8, 8)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)  # a user who turned the guard off
    assert images.decode_image(str(path), 8).shape == (3, 8, 8)


def test_big_jpeg_decodes_at_reduced_scale(tmp_path, monkeypatch):
    # 4000 x 3000 (12 MP), green top-left block: it decodes to the right shape and picture, and the image that
    # gets resized is the 1/8-scale draft (500 x 375), not the full 12 MP
    img = Image.new("RGB", (4000, 3000), (128, 128, 128))
    img.paste(GREEN, (0, 0, 1000, 750))
    img.save(tmp_path / "camera.jpg", quality=90)
    resized_from = []
    original = Image.Image.resize

    def spy(self, *args, **kwargs):
        resized_from.append(self.size)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "resize", spy)
    out = images.decode_image(str(tmp_path / "camera.jpg"), 160)
    assert out.shape == (3, 160, 160) and out.dtype == torch.uint8
    assert resized_from == [(500, 375)]
    assert near(out[:, 5, 5].float(), GREEN, 8) and near(out[:, 150, 150].float(), (128, 128, 128), 8)


def test_big_png_decodes(tmp_path):
    save_image(tmp_path / "scan.png", size=(3000, 2000))
    assert images.decode_image(str(tmp_path / "scan.png"), 64).shape == (3, 64, 64)


# --- list_image_folder, load_image_folder, resolve_data_dir ---------------------------------------


def test_list_image_folder(tmp_path):
    root = make_tree(tmp_path / "data", classes=("b", "a"), per_class=2, splits=("train",)) / "train"
    (root / "a" / "notes.txt").write_text("not an image")
    (root / "a" / "README").write_text("no suffix")
    (root / ".hidden").mkdir()
    save_image(root / "b" / "nested" / "deep.JPG", fmt="JPEG")  # nested, upper-case suffix
    paths, labels, classes = images.list_image_folder(root)
    assert classes == ["a", "b"]
    assert labels == [0, 0, 1, 1, 1]
    assert len(paths) == 5 and all(not p.endswith(("notes.txt", "README")) for p in paths)
    assert [p.split("/")[-2] for p in paths[:2]] == ["a", "a"]
    assert any(p.endswith("deep.JPG") for p in paths)
    # test/ must have the same classes; the result is listed the same way
    assert images.list_image_folder(root, ["a", "b"]) == (paths, labels, classes)


def test_list_image_folder_no_class_folders(tmp_path):
    root = tmp_path / "train"
    save_image(root / "loose.png")
    with pytest.raises(UserError) as caught:
        images.list_image_folder(root)
    assert str(root) in str(caught.value)


def test_list_image_folder_one_class(tmp_path):
    root = tmp_path / "train"
    save_image(root / "only" / "1.png")
    with pytest.raises(UserError) as caught:
        images.list_image_folder(root)
    assert str(root) in str(caught.value) and "only" in str(caught.value)


def test_list_image_folder_class_without_images(tmp_path):
    root = make_tree(tmp_path, per_class=1, splits=("train",)) / "train"
    (root / "empty").mkdir()
    (root / "empty" / "notes.txt").write_text("only text here")
    with pytest.raises(UserError) as caught:
        images.list_image_folder(root)
    assert str(root / "empty") in str(caught.value)


@pytest.mark.parametrize("test_classes", [("hotdog",), ("hotdog", "not-hotdog", "pizza"), ("hotdog", "pizza")])
def test_list_image_folder_test_classes_differ(tmp_path, test_classes):
    root = make_tree(tmp_path / "a", per_class=1, splits=("train",))
    make_tree(tmp_path / "b", classes=test_classes, per_class=1, splits=("test",))
    _, _, classes = images.list_image_folder(root / "train")
    with pytest.raises(UserError) as caught:
        images.list_image_folder(tmp_path / "b" / "test", classes)
    assert str(tmp_path / "b" / "test") in str(caught.value)


def test_load_image_folder(tmp_path):
    root = make_tree(tmp_path, per_class=3, splits=("train",)) / "train"
    save_image(root / "hotdog" / "odd.png", size=(20, 16), mode="L")
    data = images.load_image_folder(root, 9)
    assert data.images.shape == (7, 3, 9, 9) and data.images.dtype == torch.uint8
    assert data.labels.tolist() == [0, 0, 0, 0, 1, 1, 1] and data.labels.dtype == torch.int64
    assert data.classes == ["hotdog", "not-hotdog"]
    assert len(data.paths) == 7


def test_load_image_folder_bad_image_names_it(tmp_path):
    root = make_tree(tmp_path, per_class=2, splits=("train",)) / "train"
    bad = root / "hotdog" / "x.jpg"
    bad.write_text("not a jpeg")
    with pytest.raises(UserError) as caught:
        images.load_image_folder(root, 8)
    assert str(bad) in str(caught.value)


def bad_files(folder):
    """A truncated JPEG, a text file named .png and a PNG over a (test-lowered) pixel limit, in `folder`."""
    good = save_image(folder / "whole.jpg", size=(64, 64))
    (folder / "cut.jpg").write_bytes(good.read_bytes()[:300])
    good.unlink()
    (folder / "notes.png").write_text("not a png")
    save_image(folder / "huge.png", size=(40, 40))  # 1600 pixels
    return sorted(str(folder / n) for n in ("cut.jpg", "notes.png", "huge.png"))


def test_load_image_folder_skip_bad(tmp_path, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # the 12 x 12 tree images are far under it
    root = make_tree(tmp_path, per_class=2, splits=("train",)) / "train"
    bad = bad_files(root / "not-hotdog")
    with pytest.raises(UserError) as caught:  # without skip_bad the first bad file stops it, named
        images.load_image_folder(root, 8)
    assert str(caught.value).startswith(f"unreadable image {bad[0]}")
    data = images.load_image_folder(root, 8, skip_bad=True)
    assert sorted(data.skipped) == bad
    assert data.images.shape == (4, 3, 8, 8)
    assert data.labels.tolist() == [0, 0, 1, 1]
    assert len(data.paths) == 4 and not set(data.paths) & set(bad)
    assert [p.split("/")[-2] for p in data.paths] == ["hotdog", "hotdog", "not-hotdog", "not-hotdog"]
    expected = torch.stack([images.decode_image(p, 8) for p in data.paths])
    assert torch.equal(data.images, expected)  # each kept image sits next to its own path and label


def test_load_image_folder_nothing_skipped(tmp_path):
    root = make_tree(tmp_path, per_class=2, splits=("train",)) / "train"
    assert images.load_image_folder(root, 8, skip_bad=True).skipped == []
    assert images.load_image_folder(root, 8).skipped == []


def test_load_image_folder_skip_bad_emptying_a_class_names_it(tmp_path, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    root = make_tree(tmp_path, classes=("hotdog",), per_class=2, splits=("train",)) / "train"
    bad_files(root / "pizza")
    with pytest.raises(UserError) as caught:
        images.load_image_folder(root, 8, skip_bad=True)
    message = str(caught.value)
    assert message.startswith(f"class folder {root / 'pizza'} has no readable images (all 3 skipped")
    assert "\n" not in message


def test_resolve_data_dir(tmp_path, monkeypatch):
    root = make_tree(tmp_path / "data", per_class=1)
    assert images.resolve_data_dir(str(root)) == root.resolve()
    monkeypatch.setenv("SEARCH_DATA_DIR", str(root))
    assert images.resolve_data_dir(None) == root.resolve()


def test_resolve_data_dir_missing(tmp_path):
    missing = (tmp_path / "nowhere").resolve()
    with pytest.raises(UserError) as caught:
        images.resolve_data_dir(str(missing))
    assert str(missing) in str(caught.value)


def test_resolve_data_dir_is_a_file(tmp_path):
    path = tmp_path / "file"
    path.write_text("x")
    with pytest.raises(UserError):
        images.resolve_data_dir(str(path))


@pytest.mark.parametrize("present, absent", [(("train",), "test/"), (("test",), "train/"), ((), "train/")])
def test_resolve_data_dir_without_split(tmp_path, present, absent):
    root = (tmp_path / "data").resolve()
    root.mkdir()
    for split in present:
        (root / split).mkdir()
    with pytest.raises(UserError) as caught:
        images.resolve_data_dir(str(root))
    assert str(root) in str(caught.value) and absent in str(caught.value)


# --- batches and normalize --------------------------------------------------------------------------


def random_images(n, size=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=g)


def as_split(data: torch.Tensor, labels: torch.Tensor) -> images.ImageSplit:
    return images.whole_split(data.numpy(), labels, "test")


def test_a_split_of_rows_batches_as_a_copy_of_those_rows_would():
    """A trial indexes the one shared array per batch; the batches must be those of the old copy."""
    data, labels = random_images(20), torch.arange(20)
    rows = np.array([3, 17, 0, 8, 11, 5, 19, 2])
    split = images.rows_of(data.numpy(), labels.numpy(), rows, "whole")
    copy = as_split(data[rows], labels[rows])
    for seed in (0, 1):
        torch.manual_seed(seed)
        a = list(images.batches(split, 3, images.train_transform(8), torch.Generator().manual_seed(seed)))
        torch.manual_seed(seed)
        b = list(images.batches(copy, 3, images.train_transform(8), torch.Generator().manual_seed(seed)))
        assert all(torch.equal(xa, xb) and torch.equal(ya, yb) for (xa, ya), (xb, yb) in zip(a, b))
    assert split.identity != images.rows_of(data.numpy(), labels.numpy(), rows[:4], "whole").identity


@pytest.mark.parametrize("n, batch_size", [(10, 4), (8, 4), (3, 5), (1, 1)])
def test_training_batches(n, batch_size):
    data, labels = random_images(n), torch.arange(n) * 10  # distinct labels identify the images
    transform = images.train_transform(8)
    g = torch.Generator().manual_seed(0)
    epochs = []
    for _ in range(2):
        seen, shapes = [], []
        for x, y in images.batches(as_split(data, labels), batch_size, transform, g):
            assert x.dtype == torch.float32 and x.shape == (len(y), 3, 8, 8)
            assert torch.isfinite(x).all()
            shapes.append(len(y))
            seen += y.tolist()
        assert sorted(seen) == labels.tolist()  # every image exactly once per epoch
        assert shapes == [min(batch_size, n - s) for s in range(0, n, batch_size)]
        epochs.append(seen)
    if n >= 8:
        assert epochs[0] != epochs[1]  # the generator moves on: a new order each epoch


def collect(data, labels, seed, size=8, batch_size=4):
    """One training epoch's images, put back in label order, and the order they came in."""
    out = list(
        images.batches(
            as_split(data, labels), batch_size, images.train_transform(size), torch.Generator().manual_seed(seed)
        )
    )
    x, y = torch.cat([x for x, _ in out]), torch.cat([y for _, y in out])
    return x[y.argsort()], y.tolist()


def test_training_order_follows_the_generator():
    data, labels = random_images(16), torch.arange(16)
    assert collect(data, labels, 3)[1] == collect(data, labels, 3)[1]
    assert collect(data, labels, 3)[1] != collect(data, labels, 4)[1]


def test_training_crops_are_random_per_image_and_follow_the_torch_seed():
    data, labels = random_images(16), torch.arange(16)
    torch.manual_seed(0)
    a, _ = collect(data, labels, 5)
    b, _ = collect(data, labels, 5)
    differs = [not torch.equal(a[i], b[i]) for i in range(16)]
    assert sum(differs) >= 8  # each image gets its own random crop / flip, new every epoch
    torch.manual_seed(0)
    c, _ = collect(data, labels, 5)
    assert torch.equal(a, c)  # reproducible under torch.manual_seed, as fit_image_classifier relies on


def test_training_crops_differ_within_a_batch():
    data = random_images(1).expand(8, 3, 12, 12).contiguous()  # one image, eight times, in one batch
    torch.manual_seed(0)
    ((x, _),) = images.batches(
        as_split(data, torch.arange(8)), 8, images.train_transform(8), torch.Generator().manual_seed(0)
    )
    distinct = {tuple(v.flatten().tolist()) for v in x}
    assert len(distinct) >= 4  # every sample gets its own crop, not one crop per batch


def test_eval_batches_are_deterministic_and_in_order():
    data, labels = random_images(11, size=12), torch.arange(11)
    transform = images.eval_transform(8)
    first = list(images.batches(as_split(data, labels), 4, transform))
    second = list(images.batches(as_split(data, labels), 4, transform))
    assert [len(y) for _, y in first] == [4, 4, 3]
    assert torch.cat([y for _, y in first]).tolist() == list(range(11))
    for (xa, ya), (xb, yb) in zip(first, second):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    # evaluation = centre crop + normalisation, nothing random
    x = torch.cat([x for x, _ in first])
    assert x.shape == (11, 3, 8, 8)
    assert torch.allclose(x, images.normalize(data[:, :, 2:10, 2:10]))


def test_batches_empty():
    empty = torch.zeros((0, 3, 8, 8), dtype=torch.uint8)
    assert list(images.batches(as_split(empty, torch.zeros(0, dtype=torch.int64)), 4, images.eval_transform(8))) == []


def test_normalize_matches_imagenet():
    batch = random_images(3, size=5)
    out = images.normalize(batch)
    assert out.dtype == torch.float32 and out.shape == batch.shape
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    for c in range(3):
        manual = (batch[:, c].double() / 255.0 - mean[c]) / std[c]
        assert torch.allclose(out[:, c].double(), manual, atol=1e-5)
    extremes = images.normalize(torch.tensor([0, 255], dtype=torch.uint8).view(2, 1, 1, 1).expand(2, 3, 1, 1))
    assert torch.allclose(extremes[0, :, 0, 0], torch.tensor([-m / s for m, s in zip(mean, std)]))
    assert torch.allclose(extremes[1, :, 0, 0], torch.tensor([(1 - m) / s for m, s in zip(mean, std)]))


def test_cache_size():
    assert images.cache_size(224) == 256
    assert images.cache_size(64) > 64
