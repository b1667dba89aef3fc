import json
from pathlib import Path

import dagster as dg
import pytest
import yt_dlp

from assets.core.rejects import Reject
from assets.videos.media import probe
from assets.videos.sources import (
    VIDEO_FORMAT,
    Video,
    download,
    local_folder,
    read_manifest,
    read_music_index,
    read_vggsound_index,
    usable,
)
from storage.names import hashed_name



def test_read_manifest_reads_baton_csv(tmp_path: Path):
    (tmp_path / "manifest.csv").write_text(
        "id,youtube_id,url,path,start,duration,label\n"
        "a,,https://example.org/a.mp4,,1.5,10,cello\n"
        ",dQw4w9WgXcQ,,,,,\n"
        "c,,,clips/c.mp4,0,,\n"
    )
    assert read_manifest(tmp_path / "manifest.csv") == [
        Video("a", "https://example.org/a.mp4", None, 1.5, 10.0, "cello"),
        Video("dQw4w9WgXcQ", "https://www.youtube.com/watch?v=dQw4w9WgXcQ", None, 0.0, None, None),
        Video("c", None, str(tmp_path / "clips" / "c.mp4"), 0.0, None, None),
    ]
    (tmp_path / "ids_only.csv").write_text("youtube_id\nxyz\n")
    assert read_manifest(tmp_path / "ids_only.csv")[0].url.endswith("v=xyz")
    (tmp_path / "bad.csv").write_text("url\nhttps://example.org/a.mp4\n")
    with pytest.raises(ValueError, match=r"rows \[2\]"):
        read_manifest(tmp_path / "bad.csv")


def test_a_row_with_a_non_numeric_time_is_a_reject_and_the_others_parse(tmp_path: Path):
    (tmp_path / "manifest.csv").write_text(
        "id,url,start,duration,label\n"
        "a,https://example.org/a.mp4,1.5,10,cello\n"
        "b,https://example.org/b.mp4,0:30,,flute\n"
        "c,https://example.org/c.mp4,,inf,\n"
        "d,https://example.org/d.mp4,2,,\n"
    )
    found, rejects = usable(read_manifest(tmp_path / "manifest.csv"))
    assert found == [
        Video("a", "https://example.org/a.mp4", None, 1.5, 10.0, "cello"),
        Video("d", "https://example.org/d.mp4", None, 2.0, None, None),
    ]
    assert rejects == [
        Reject("video", "b", "manifest", "ValueError", "start '0:30' is not a number of seconds"),
        Reject("video", "c", "manifest", "ValueError", "duration 'inf' is not a number of seconds"),
    ]


def test_the_videos_step_completes_with_a_bad_row_as_its_reject(tmp_path: Path, make_video):
    from assets.core.resources import HomeResource
    from assets.core.versions import with_code_versions
    from assets.videos.defs import videos
    from storage import shards

    make_video(tmp_path / "good.mp4")
    (tmp_path / "manifest.csv").write_text("id,path,start\ngood,good.mp4,0.5\nbad,good.mp4,soon\n")
    home = HomeResource(root=str(tmp_path / "home"))
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("video_batches", ["b"])
        result = dg.materialize(
            with_code_versions([videos]), partition_key="b", instance=instance, resources={"home": home},
            run_config={"ops": {"videos": {"config": {"source": str(tmp_path / "manifest.csv")}}}},
        )  # fmt: skip
    assert result.success
    datasets = home.home.datasets
    assert [(v["id"], v["start"]) for v in shards.read_table(datasets, "videos", "b").to_pylist()] == [("good", 0.5)]
    assert [(r["item"], r["stage"], r["message"]) for r in shards.read_table(datasets, "videos_rejects", "b").to_pylist()] == [
        ("bad", "manifest", "start 'soon' is not a number of seconds")
    ]


def test_read_music_index_reads_the_published_json(tmp_path: Path):
    index = {"videos": {"accordion": ["0c5ZVfE8ipQ", "2G4P7x9jsr8"], "acoustic_guitar": ["-8fJyHNv1iQ"]}}
    (tmp_path / "MUSIC21_solo_videos.json").write_text(json.dumps(index))
    videos = read_music_index(tmp_path / "MUSIC21_solo_videos.json")
    assert [(v.id, v.label) for v in videos] == [
        ("0c5ZVfE8ipQ", "accordion"),
        ("2G4P7x9jsr8", "accordion"),
        ("-8fJyHNv1iQ", "acoustic_guitar"),
    ]
    assert videos[2] == Video(
        "-8fJyHNv1iQ", "https://www.youtube.com/watch?v=-8fJyHNv1iQ", None, 0.0, None, "acoustic_guitar"
    )


def test_read_vggsound_index_reads_the_published_csv(tmp_path: Path):
    (tmp_path / "vggsound.csv").write_text(
        "---g-f_I2yQ,1,people marching,test\n"
        '--0PQM4-hqg,30,"male speech, man speaking",train\n'
        "--0PQM4-hqg,170,waterfall burbling,train\n"
    )
    videos = read_vggsound_index(tmp_path / "vggsound.csv")
    assert [v.id for v in videos] == ["---g-f_I2yQ_000001", "--0PQM4-hqg_000030", "--0PQM4-hqg_000170"]
    assert videos[1] == Video(
        "--0PQM4-hqg_000030",
        "https://www.youtube.com/watch?v=--0PQM4-hqg",
        None,
        30.0,
        10.0,
        "male speech, man speaking",
    )


def test_local_folder_lists_video_files_only(tmp_path: Path):
    for name in ("b.MKV", "a.mp4", "notes.txt"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "sub.mp4").mkdir()
    assert local_folder(tmp_path) == [
        Video("a", None, str(tmp_path / "a.mp4")),
        Video("b", None, str(tmp_path / "b.MKV")),
    ]


@pytest.mark.parametrize(("offered", "chosen"), [(("18", "22", "137", "140"), "18"), (("22", "137", "140"), "22")])
def test_video_format_takes_the_smallest_combined_format_that_covers_the_frames(offered, chosen):
    """YouTube's offer: 18 = 360p and 22 = 720p with audio, 137 = 1080p video only, 140 = audio only."""
    formats = {
        "18": {"height": 360, "vcodec": "avc1", "acodec": "mp4a"},
        "22": {"height": 720, "vcodec": "avc1", "acodec": "mp4a"},
        "137": {"height": 1080, "vcodec": "avc1", "acodec": "none"},
        "140": {"vcodec": "none", "acodec": "mp4a"},
    }
    info = {
        "id": "x",
        "title": "x",
        "extractor": "youtube",
        "extractor_key": "Youtube",
        "webpage_url": "https://www.youtube.com/watch?v=x",
        "formats": [{"format_id": f, "url": f"https://example.org/{f}", "ext": "mp4", **formats[f]} for f in offered],
    }
    with yt_dlp.YoutubeDL({"format": VIDEO_FORMAT, "quiet": True, "simulate": True}) as ydl:
        assert ydl.process_ie_result(info, download=False)["format_id"] == chosen


def test_download_fetches_http_videos_rejects_the_rest_and_never_fetches_twice(tmp_path: Path, serve, make_video):
    site = tmp_path / "site"
    site.mkdir()
    make_video(site / "clip.mp4")
    base = serve(site)
    good = Video("good", f"{base}/clip.mp4", None, 0.0, 1.0)
    same_file = Video("good_later", f"{base}/clip.mp4", None, 1.0, 1.0)
    missing = Video("missing", f"{base}/missing.mp4", None)
    not_http = Video("ftp", "ftp://127.0.0.1/clip.mp4", None)
    gone = Video("gone", None, str(tmp_path / "gone.mp4"))
    local = Video("local", None, str(make_video(tmp_path / "local.mp4", 1.0)))
    raw = tmp_path / "raw"

    paths, rejects = download([good, same_file, missing, not_http, gone, local], raw, backoff=0.01)

    assert set(paths) == {"good", "good_later", "local"} and paths["local"] == Path(local.path)
    assert paths["good"] == paths["good_later"] == raw / f"{hashed_name(good.url)}.mp4"
    info = probe(paths["good"])
    assert (info.width, info.height, info.has_audio) == (160, 90, True)
    by_item = {r.item: r for r in rejects}
    assert set(by_item) == {"missing", "ftp", "gone"}
    assert {(r.dataset, r.stage) for r in rejects} == {("video", "download")}
    assert "404" in by_item["missing"].message
    assert by_item["ftp"].error_type == "UnsupportedURL" and "http(s)" in by_item["ftp"].message
    assert by_item["gone"].error_type == "FileNotFoundError"

    first_bytes = paths["good"].read_bytes()
    make_video(site / "clip.mp4", 1.0, frequency=880)  # the server now holds a different file
    again, rejects_again = download([good], raw, backoff=0.01)
    assert again == {"good": paths["good"]} and not rejects_again
    assert again["good"].read_bytes() == first_bytes


def test_split_is_stable_per_video_and_about_eight_one_one():
    from assets.videos.sources import split_of

    splits = [split_of(f"video{i}") for i in range(5000)]
    assert splits == [split_of(f"video{i}") for i in range(5000)]
    shares = {s: splits.count(s) / len(splits) for s in ("train", "valid", "test")}
    assert 0.77 < shares["train"] < 0.83 and 0.08 < shares["valid"] < 0.12 and 0.08 < shares["test"] < 0.12
    assert [split_of(f"video{i}", seed=1) for i in range(50)] != splits[:50]


def test_has_header_tells_a_baton_manifest_from_a_vggsound_index(tmp_path):
    from assets.videos.sources import has_header

    (tmp_path / "mine.csv").write_text("id,url,path,start,duration,label\na,,a.mp4,0,,violin\n")
    (tmp_path / "vgg.csv").write_text("---g-f_I2yQ,1,people marching,test\n")
    assert has_header(tmp_path / "mine.csv") and not has_header(tmp_path / "vgg.csv")


def test_labelled_batches_hold_out_every_label():
    from assets.videos.sources import Video, assign_splits, split_of

    videos = [Video(f"{label}-{i}", None, f"{label}-{i}.mp4", label=label) for label in ("flute", "cello") for i in range(6)]
    videos.append(Video("unlabelled", None, "x.mp4"))
    splits = assign_splits(videos)
    for label in ("flute", "cello"):
        mine = [splits[v.id] for v in videos if v.label == label]
        assert mine.count("test") == 1 and mine.count("valid") == 1 and mine.count("train") == 4
    assert splits["unlabelled"] == split_of("unlabelled")
    fewer_flutes = assign_splits(videos[:5] + videos[6:])
    assert all(fewer_flutes[v.id] == splits[v.id] for v in videos if v.label == "cello")  # labels split apart
