"""Tests for trainables.images: the seeded stratified split, image decoding, ImageFolder listing and
data-dir checks, and the training / evaluation batches (on tiny images generated in tmp_path)."""

import numpy as np
import pytest
import torch
from PIL import Image

from search.errors import UserError
from trainables import images

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


@pytest.mark.parametrize("counts, fraction", [([50, 50], 0.2), ([100, 30, 7], 0.25), ([40, 60], 0.5), ([2, 2, 2], 0.2),
                                              ([2, 9], 0.9), ([3, 1000], 0.1)])
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

@pytest.mark.parametrize("mode, suffix", [("RGB", ".png"), ("RGB", ".jpg"), ("L", ".png"), ("L", ".jpg"), ("P", ".png"),
                                          ("P", ".gif"), ("RGBA", ".png")])
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


@pytest.mark.parametrize("n, batch_size", [(10, 4), (8, 4), (3, 5), (1, 1)])
def test_training_batches(n, batch_size):
    data, labels = random_images(n), torch.arange(n) * 10  # distinct labels identify the images
    transform = images.train_transform(8)
    g = torch.Generator().manual_seed(0)
    epochs = []
    for _ in range(2):
        seen, shapes = [], []
        for x, y in images.batches(data, labels, batch_size, transform, g):
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
    out = list(images.batches(data, labels, batch_size, images.train_transform(size), torch.Generator().manual_seed(seed)))
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
    (x, _), = images.batches(data, torch.arange(8), 8, images.train_transform(8), torch.Generator().manual_seed(0))
    distinct = {tuple(v.flatten().tolist()) for v in x}
    assert len(distinct) >= 4  # every sample gets its own crop, not one crop per batch


def test_eval_batches_are_deterministic_and_in_order():
    data, labels = random_images(11, size=12), torch.arange(11)
    transform = images.eval_transform(8)
    first = list(images.batches(data, labels, 4, transform))
    second = list(images.batches(data, labels, 4, transform))
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
    assert list(images.batches(empty, torch.zeros(0, dtype=torch.int64), 4, images.eval_transform(8))) == []


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
