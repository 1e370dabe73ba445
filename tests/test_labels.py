from pathlib import Path

import pytest
from PIL import Image

from captcha_crnn.data.labels import collect, split_validation
from captcha_crnn.errors import CaptchaCrnnError, LabelError


def touch_image(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("L", (40, 16), 255).save(path)
    return path


def labels_of(items) -> dict[str, str]:
    return {it.path.name: it.label for it in items}


def test_label_is_file_stem(tmp_path):
    touch_image(tmp_path / "7041.png")
    touch_image(tmp_path / "x3mf8.jpg")
    (tmp_path / "notes.txt").write_text("not an image")
    assert labels_of(collect(tmp_path)) == {"7041.png": "7041", "x3mf8.jpg": "x3mf8"}


def test_label_pattern_first_match_or_group(tmp_path):
    touch_image(tmp_path / "ab12-0.png")
    touch_image(tmp_path / "cd34-1.png")
    assert labels_of(collect(tmp_path, label_pattern=r"^[^-]+")) == {
        "ab12-0.png": "ab12",
        "cd34-1.png": "cd34",
    }
    assert labels_of(collect(tmp_path, label_pattern=r"-(\d)$")) == {"ab12-0.png": "0", "cd34-1.png": "1"}


def test_label_pattern_without_match_is_skipped_with_warning(tmp_path, caplog):
    touch_image(tmp_path / "ab12_5f3e.png")
    touch_image(tmp_path / "-----.png")
    items = collect(tmp_path, label_pattern=r"^([a-z0-9]+)_")
    assert labels_of(items) == {"ab12_5f3e.png": "ab12"}
    assert "skipped 1 file" in caplog.text


def test_invalid_pattern_is_a_clear_error(tmp_path):
    touch_image(tmp_path / "a.png")
    with pytest.raises(CaptchaCrnnError, match="not a valid regular expression"):
        collect(tmp_path, label_pattern="(")


@pytest.mark.parametrize("sep", [",", "\t"])
def test_labels_file_csv_and_tsv_with_header(tmp_path, sep):
    touch_image(tmp_path / "img" / "a.png")
    touch_image(tmp_path / "b.png")
    labels = tmp_path / "mine.txt"
    labels.write_text(f"path{sep}label\nimg/a.png{sep}7041\nb.png{sep}x3 mf\n")
    items = collect(tmp_path, labels_file=labels)
    assert [(it.path, it.label) for it in items] == [
        (tmp_path / "img" / "a.png", "7041"),
        (tmp_path / "b.png", "x3 mf"),
    ]


def test_labels_csv_in_folder_is_used_automatically(tmp_path):
    touch_image(tmp_path / "0001.png")
    (tmp_path / "labels.csv").write_text("file,label\n0001.png,abcd\n")
    assert labels_of(collect(tmp_path)) == {"0001.png": "abcd"}


def test_labels_file_bad_row_names_file_and_line(tmp_path):
    labels = tmp_path / "labels.tsv"
    labels.write_text("a.png\tabc\njustonecolumn\n")
    with pytest.raises(LabelError, match=r"labels.tsv:2"):
        collect(tmp_path)


def test_recursive(tmp_path):
    touch_image(tmp_path / "sub" / "1234.png")
    with pytest.raises(CaptchaCrnnError, match="--recursive"):
        collect(tmp_path)
    assert labels_of(collect(tmp_path, recursive=True)) == {"1234.png": "1234"}


def test_missing_and_empty_folders(tmp_path):
    with pytest.raises(CaptchaCrnnError, match="no such file or folder"):
        collect(tmp_path / "nope")
    with pytest.raises(CaptchaCrnnError, match="no images"):
        collect(tmp_path)


def test_split_is_seeded_disjoint_and_complete(tmp_path):
    for i in range(50):
        touch_image(tmp_path / f"{i:04d}.png")
    items = collect(tmp_path)
    train, val = split_validation(items, 0.1, seed=7)
    assert len(val) == 5 and len(train) == 45
    assert {it.path for it in train}.isdisjoint(it.path for it in val)
    _, again_val = split_validation(list(reversed(items)), 0.1, seed=7)
    assert [it.path for it in again_val] == [it.path for it in val]
    _, other_val = split_validation(items, 0.1, seed=8)
    assert [it.path for it in other_val] != [it.path for it in val]
    with pytest.raises(CaptchaCrnnError):
        split_validation(items, 1.5, seed=0)


def test_labels_file_values_are_stripped(tmp_path):
    touch_image(tmp_path / "a.png")
    touch_image(tmp_path / "b.png")
    (tmp_path / "labels.csv").write_text("file, label\n a.png , abcd\nb.png,\tx3 mf \n")
    assert labels_of(collect(tmp_path)) == {"a.png": "abcd", "b.png": "x3 mf"}
    (tmp_path / "labels.csv").write_text("a.png,abcd\na.png, abcd \n")  # the same row, not a conflict
    assert labels_of(collect(tmp_path)) == {"a.png": "abcd"}
