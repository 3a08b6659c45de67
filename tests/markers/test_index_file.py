"""The index file mapped by the processes that load it (issue 28 item 4, issue 30), and two covers side by side."""
import cv2
import faiss
import numpy as np
import pytest

from markers import IndexFormatError, RecognitionIndex, train_page
from markers.recognition import page_corners_mm
from markers.recognition.persistence import INDEX_VERSION
from markers.synth import PAGE_H_MM, PAGE_W_MM, generate_page

SEEDS = (0, 1, 4)


@pytest.fixture(scope="module")
def pages():
    return {s: generate_page(s) for s in SEEDS}


@pytest.fixture(scope="module")
def index(pages):
    idx = RecognitionIndex()
    for s in SEEDS:
        idx.add(train_page(pages[s], PAGE_W_MM, PAGE_H_MM, f"page-{s}"), scopes=(f"edition:{s}",))
    return idx


def _place(frame, page, quad):
    """Draw ``page`` into ``frame`` with its corners (tl, tr, br, bl) at ``quad`` px."""
    src = page_corners_mm(PAGE_W_MM, PAGE_H_MM).astype(np.float32)
    h = cv2.getPerspectiveTransform(src, np.float32(quad)).astype(np.float64)
    ph, pw = page.shape[:2]
    cv2.warpPerspective(page, h @ np.diag([PAGE_W_MM / pw, PAGE_H_MM / ph, 1.0]), (frame.shape[1], frame.shape[0]),
                        dst=frame, borderMode=cv2.BORDER_TRANSPARENT)
    return h


def _mapped_files() -> set[str]:
    with open("/proc/self/maps") as fh:
        return {line.split(maxsplit=5)[5].strip() for line in fh if len(line.split(maxsplit=5)) == 6}


def test_a_loaded_index_reads_its_arrays_from_the_mapped_file(index, pages, tmp_path):
    path = tmp_path / "catalog.bnix"
    index.save(path)
    loaded = RecognitionIndex.load(path)
    assert str(path) in _mapped_files()  # the file is mapped, not read into this process's memory
    page = loaded._pages["page-1"]
    base = page.descriptors
    while base.base is not None and not isinstance(base, np.memmap):
        base = base.base
    assert isinstance(base, np.memmap)
    np.testing.assert_array_equal(page.descriptors, index._pages["page-1"].descriptors)
    np.testing.assert_array_equal(page.coords, index._pages["page-1"].coords)
    frame = np.full((720, 1280, 3), 90, np.uint8)
    _place(frame, pages[1], [[420, 60], [880, 90], [900, 690], [380, 650]])
    a, b = index.recognize(frame), loaded.recognize(frame)
    assert a.page_id == b.page_id == "page-1" and np.allclose(a.corners, b.corners, atol=0.5)
    read = RecognitionIndex.load(path, mapped=False)
    assert read.recognize(frame).page_id == "page-1"


def test_a_mapped_index_can_be_changed_and_saved_again(index, pages, tmp_path):
    """The first change copies the mapped FAISS index into the process (FAISS cannot change a viewed list): pages
    are removed and added as in an index built here, and the result saves and loads again."""
    path = tmp_path / "catalog.bnix"
    index.save(path)
    loaded = RecognitionIndex.load(path)
    frame = np.full((720, 1280, 3), 90, np.uint8)
    _place(frame, pages[4], [[420, 60], [880, 90], [900, 690], [380, 650]])
    loaded.remove("page-4")
    assert loaded.recognize(frame) is None
    loaded.add(train_page(pages[4], PAGE_W_MM, PAGE_H_MM, "page-4-again"), scopes=("edition:9",))
    assert loaded.recognize(frame).page_id == "page-4-again"
    loaded.save(tmp_path / "again.bnix")
    again = RecognitionIndex.load(tmp_path / "again.bnix")
    assert sorted(again.page_ids) == ["page-0", "page-1", "page-4-again"]
    assert again.recognize(frame, scope="edition:9").page_id == "page-4-again"
    assert RecognitionIndex.stored_version(tmp_path / "again.bnix") == INDEX_VERSION
    assert RecognitionIndex.stored_scopes(tmp_path / "again.bnix")["page-4-again"] == ("edition:9",)


def test_an_index_file_corrupted_inside_a_section_is_refused(index, tmp_path):
    path = tmp_path / "catalog.bnix"
    index.save(path)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(IndexFormatError, match="checksum"):
        RecognitionIndex.load(path)


def test_an_ivf_index_loaded_mapped_is_searched_in_place(pages, tmp_path):
    import dataclasses

    from markers.recognition import DEFAULT_PARAMS

    params = dataclasses.replace(DEFAULT_PARAMS, ivf_min_features=500)
    idx = RecognitionIndex(params)
    for s in SEEDS:
        idx.add(train_page(pages[s], PAGE_W_MM, PAGE_H_MM, f"page-{s}"))
    assert isinstance(idx._index, faiss.IndexBinaryIVF)
    idx.save(tmp_path / "ivf.bnix")
    loaded = RecognitionIndex.load(tmp_path / "ivf.bnix", params)
    q = idx._pages["page-0"].descriptors[:300]
    for a, b in zip(idx._search(q, idx._index, 10), loaded._search(q, loaded._index, 10)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("aimed_right", [True, False])
def test_two_covers_side_by_side_answer_the_one_nearer_the_frame_centre(index, pages, aimed_right):
    """Two whole covers of the same size next to each other, the frame centre on one of them: that one is the
    answer (acceptance.aimed_first), whichever of the two is on which side."""
    frame = np.full((720, 1280, 3), 90, np.uint8)
    left, right = (pages[0], pages[4]) if aimed_right else (pages[4], pages[0])
    shift = 160 if aimed_right else -160  # the pair moved so the frame centre falls on one cover
    _place(frame, left, [[170 - shift, 70], [620 - shift, 70], [620 - shift, 706], [170 - shift, 706]])
    _place(frame, right, [[660 - shift, 70], [1110 - shift, 70], [1110 - shift, 706], [660 - shift, 706]])
    match = index.recognize(frame)
    assert match is not None and match.page_id == "page-4"
