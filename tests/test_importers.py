"""Importers on small fixtures written in each dataset's real format."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rlvid.data.importers import import_dataset
from rlvid.data.loaders import DataError, load_jsonl

REPO = Path(__file__).resolve().parents[1]

# --- Charades-STA -------------------------------------------------------------------------------------------

CHARADES_STA = """\
AO8RW 0.0 6.9##a person is putting a book on a shelf.
AO8RW 13.1 20.5##person begins sitting on a chair.
Y6R7T 24.3 31.2##person turn a light on.
"""
# The start of Charades_v1_train.csv (columns abridged to the real header's first and last ones).
CHARADES_CSV = """\
id,subject,scene,quality,relevance,verified,script,objects,descriptions,actions,length
AO8RW,HR43,Bedroom,6,7,Yes,A person puts a book on a shelf.,book;shelf,A person puts a book away.,c009 0.00 6.90,28.58
Y6R7T,9TDM,Kitchen,7,7,Yes,A person turns on the light.,light,Someone turns on a light.,c105 24.30 31.20,30.71
"""


def _charades(tmp_path: Path, annotations: str = CHARADES_STA, durations: str = CHARADES_CSV) -> dict:
    (tmp_path / "charades_sta_train.txt").write_text(annotations)
    suffix = ".csv" if durations.startswith("id,") else ".json"
    (tmp_path / f"Charades_v1_train{suffix}").write_text(durations)
    return {
        "annotations": tmp_path / "charades_sta_train.txt",
        "durations": tmp_path / f"Charades_v1_train{suffix}",
        "video_dir": tmp_path / "Charades_v1",
    }


def test_charades_sta_lines_become_grounding_samples(tmp_path):
    samples = import_dataset("charades_sta", **_charades(tmp_path))
    assert [s.id for s in samples] == ["AO8RW_0", "AO8RW_1", "Y6R7T_0"]
    first, _, last = samples
    assert first.task == "temporal_grounding"
    assert first.video == str(tmp_path / "Charades_v1" / "AO8RW.mp4")
    assert first.duration == 28.58 and first.intervals == [(0.0, 6.9)]
    assert first.question == 'When does "a person is putting a book on a shelf" happen in the video?'
    assert first.meta["query"] == "a person is putting a book on a shelf."
    # the end overshoots the 30.71 s video by 0.49 s: clipped, as public annotations often need
    assert last.intervals == [(24.3, 30.71)]


def test_charades_sta_json_durations(tmp_path):
    paths = _charades(tmp_path, durations=json.dumps({"AO8RW": 28.58, "Y6R7T": {"duration": 31.5}}))
    samples = import_dataset("charades_sta", **paths)
    assert [s.duration for s in samples] == [28.58, 28.58, 31.5]
    assert samples[2].intervals == [(24.3, 31.2)]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("AO8RW 0.0 6.9 a person without a separator", "found no '##'"),
        ("AO8RW 6.9##a person sits.", "expected 'VIDEOID start end' before '##'"),
        ("AO8RW 9.0 2.0##a person sits.", "interval [9.0, 2.0] is reversed"),
        ("AO8RW zero 2.0##a person sits.", "start must be a number"),
        ("ZZZZZ 0.0 2.0##a person sits.", "no duration for video 'ZZZZZ'"),
    ],
)
def test_charades_sta_bad_line_names_file_and_line(tmp_path, line, message):
    paths = _charades(tmp_path, annotations=CHARADES_STA + line + "\n")
    with pytest.raises(DataError) as err:
        import_dataset("charades_sta", **paths)
    assert str(err.value).startswith(f"{paths['annotations']}:4: ")
    assert message in str(err.value)


def test_charades_sta_skip_bad_counts_and_warns(tmp_path, caplog):
    paths = _charades(tmp_path, annotations="broken line\n" + CHARADES_STA)
    with caplog.at_level(logging.WARNING, logger="rlvid.data"):
        samples = import_dataset("charades_sta", **paths, skip_bad=True)
    assert len(samples) == 3
    assert "skipped 1 bad record(s), kept 3" in caplog.text and f"{paths['annotations']}:1:" in caplog.text


# --- ActivityNet Captions -----------------------------------------------------------------------------------

ACTIVITYNET = {
    "v_QOlSCBRmfWY": {
        "duration": 82.73,
        "timestamps": [[0.83, 19.86], [17.37, 60.81], [56.26, 79.42]],
        "sentences": [
            "A young woman is seen standing in a room and leads into her dancing.",
            " The girl dances around the room while the camera captures her movements.",
            " She continues dancing around the room and ends by laying on the floor.",
        ],
    },
    "v_ehGHCYKzyZ8": {
        "duration": 61.72,
        "timestamps": [[17.1, 61.72], [0.0, 17.1]],
        "sentences": ["The man is seen holding up a tire.", "A man is standing in a garage."],
    },
}


def _activitynet(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "train.json"
    path.write_text(json.dumps(data))
    return path


def test_activitynet_captions_become_dense_caption_samples(tmp_path):
    path = _activitynet(tmp_path, ACTIVITYNET)
    samples = import_dataset("activitynet_captions", annotations=path, video_dir=tmp_path / "videos")
    assert [(s.id, s.task) for s in samples] == [("v_QOlSCBRmfWY", "dense_caption"), ("v_ehGHCYKzyZ8", "dense_caption")]
    first, second = samples
    assert first.video == str(tmp_path / "videos" / "v_QOlSCBRmfWY.mp4") and first.duration == 82.73
    assert [(e.start, e.end) for e in first.events] == [(0.83, 19.86), (17.37, 60.81), (56.26, 79.42)]
    assert first.events[1].caption == "The girl dances around the room while the camera captures her movements."
    # events are sorted by start
    assert [(e.start, e.caption) for e in second.events] == [
        (0.0, "A man is standing in a garage."), (17.1, "The man is seen holding up a tire.")]


def test_activitynet_references_become_reference_events(tmp_path):
    # val_2 annotates the same videos again; its lists are kept for the official SODA_c (best of both).
    path = _activitynet(tmp_path, ACTIVITYNET)
    val_2 = tmp_path / "val_2.json"
    val_2.write_text(json.dumps({"v_ehGHCYKzyZ8": {"duration": 61.72, "timestamps": [[30.0, 61.72], [0.0, 30.0]],
                                                   "sentences": ["He lifts a tire.", "A man waits."]}}))
    first, second = import_dataset("activitynet_captions", annotations=path, video_dir="v", references=[val_2])
    assert first.reference_events is None
    assert [[(e.start, e.caption) for e in ref] for ref in second.reference_events] == [
        [(0.0, "A man waits."), (30.0, "He lifts a tire.")]]
    assert second.events[0].caption == "A man is standing in a garage."


def test_activitynet_with_grounding_adds_one_sample_per_sentence(tmp_path):
    path = _activitynet(tmp_path, ACTIVITYNET)
    samples = import_dataset("activitynet_captions", annotations=path, video_dir="vids", with_grounding=True)
    grounding = [s for s in samples if s.task == "temporal_grounding"]
    assert [s.id for s in grounding] == ["v_QOlSCBRmfWY_0", "v_QOlSCBRmfWY_1", "v_QOlSCBRmfWY_2",
                                         "v_ehGHCYKzyZ8_0", "v_ehGHCYKzyZ8_1"]
    assert grounding[3].intervals == [(17.1, 61.72)]
    assert grounding[3].question == 'When does "The man is seen holding up a tire" happen in the video?'
    assert grounding[0].video == os.path.join("vids", "v_QOlSCBRmfWY.mp4")


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({"duration": 10.0, "timestamps": [[0, 2]], "sentences": []}, "same length"),
        ({"duration": 10.0, "timestamps": [[4, 2]], "sentences": ["x"]}, "is reversed"),
        ({"duration": 10.0, "timestamps": [[12, 14]], "sentences": ["x"]}, "starts after the video ends"),
        ({"timestamps": [[0, 2]], "sentences": ["x"]}, "missing 'duration'"),
    ],
)
def test_activitynet_bad_record_names_file_and_video(tmp_path, record, message):
    path = _activitynet(tmp_path, {**ACTIVITYNET, "v_bad": record})
    with pytest.raises(DataError) as err:
        import_dataset("activitynet_captions", annotations=path, video_dir="v")
    assert str(err.value).startswith(f"{path}['v_bad']")
    assert message in str(err.value)


# --- NExT-GQA -----------------------------------------------------------------------------------------------

NEXTGQA_CSV = """\
video_id,frame_count,width,height,question,answer,qid,type,a0,a1,a2,a3,a4
4010069381,1189,640,480,how do the two man play the instrument,roll the handle,6,CH,sing into microphone,\
roll the handle,press with hands,blow into it,strum the guitar
4882821564,1024,640,360,why did the boy pick up one present from the group of them and move to the sofa,\
to unwrap it,1,CW,to share with the girl,approach lady sitting there,unwrap it,to unwrap it,playing with toy
"""
NEXTGQA_GSUB = {
    "4010069381": {"duration": 39.7, "location": {"6": [[2.1, 20.3]], "8": [[0.0, 5.0]]}, "fps": 29.97},
    "4882821564": {"duration": 34.2, "location": {"1": [[12.1, 17.1], [20.0, 23.5], [29.7, 34.9]]}, "fps": 30.0},
}


def _nextgqa(tmp_path: Path, csv_text: str = NEXTGQA_CSV, gsub: dict | None = None) -> dict:
    (tmp_path / "val.csv").write_text(csv_text)
    (tmp_path / "gsub_val.json").write_text(json.dumps(gsub or NEXTGQA_GSUB))
    (tmp_path / "map_vid_vidorID.json").write_text(json.dumps({"4010069381": "1106/4010069381"}))
    return {"annotations": tmp_path / "val.csv", "grounding": tmp_path / "gsub_val.json", "video_dir": tmp_path}


def test_nextgqa_rows_become_grounded_qa_with_options(tmp_path):
    paths = _nextgqa(tmp_path)
    samples = import_dataset("nextgqa", **paths, video_map=tmp_path / "map_vid_vidorID.json")
    assert [s.id for s in samples] == ["4010069381_6", "4882821564_1"]
    first, second = samples
    assert first.task == "grounded_qa"
    assert first.question == "how do the two man play the instrument?"
    assert first.answer == "roll the handle" and first.meta["answer_letter"] == "B"
    assert first.options == ["sing into microphone", "roll the handle", "press with hands", "blow into it",
                             "strum the guitar"]
    assert first.video == str(tmp_path / "1106/4010069381.mp4") and first.duration == 39.7
    assert first.intervals == [(2.1, 20.3)]
    # the answer text picks the exact option, not the similar "unwrap it"; the last span is clipped to 34.2 s
    assert second.answer == "to unwrap it" and second.meta["answer_letter"] == "D"
    assert second.intervals == [(12.1, 17.1), (20.0, 23.5), (29.7, 34.2)]
    assert second.video == str(tmp_path / "4882821564.mp4")
    assert second.meta["type"] == "CW"


def test_nextgqa_accepts_nextqa_answer_indices(tmp_path):
    csv_text = NEXTGQA_CSV.replace(",roll the handle,6,CH,", ",1,6,CH,")
    (first, _) = import_dataset("nextgqa", **_nextgqa(tmp_path, csv_text))
    assert first.answer == "roll the handle" and first.meta["answer_letter"] == "B"


@pytest.mark.parametrize(
    ("csv_change", "gsub", "line", "message"),
    [
        ((",roll the handle,6,CH,", ",dance,6,CH,"), None, 2, "answer 'dance' is neither one of the options"),
        ((",6,CH,", ",7,CH,"), None, 2, "no location for video '4010069381' qid '7'"),
        (("", ""), {"4010069381": NEXTGQA_GSUB["4010069381"]}, 3, "video '4882821564' is not in"),
    ],
)
def test_nextgqa_bad_row_names_file_and_line(tmp_path, csv_change, gsub, line, message):
    paths = _nextgqa(tmp_path, NEXTGQA_CSV.replace(*csv_change), gsub)
    with pytest.raises(DataError) as err:
        import_dataset("nextgqa", **paths)
    assert str(err.value).startswith(f"{paths['annotations']}:{line}: ")
    assert message in str(err.value)


def test_nextgqa_missing_column_is_reported(tmp_path):
    paths = _nextgqa(tmp_path, NEXTGQA_CSV.replace("qid,", "question_id,"))
    with pytest.raises(DataError, match=r"val.csv:1: missing column\(s\) \['qid'\]"):
        import_dataset("nextgqa", **paths)


# --- Temporal-R1 --------------------------------------------------------------------------------------------

TEMPORAL_R1 = [
    {
        "dataset": "charades_train",
        "video": "AO8RW.mp4",
        "problem": 'To accurately pinpoint the event "a person is putting a book on a shelf." in the video, '
                   "determine the precise time period of the event.",
        "solution": [0.1, 0.25],
        "video_length": 30.0,
    },
    {
        "dataset": "charades_train",
        "path": "/data/Y6R7T.mp4",
        "problem": "When does the person turn a light on?",
        "solution": "<answer>0.5 to 0.75</answer>",
        "video_length": 20.0,
        "id": "y6r7t-light",
    },
    {
        "video": "KX1Q2.mp4",
        "problem": "Find both moments the dog barks.",
        "query": "the dog barks",
        "solution": [[0.0, 0.1], [0.5, 0.6]],
        "video_length": 10.0,
    },
]


def _temporal_r1(tmp_path: Path, records: list) -> Path:
    path = tmp_path / "charades_train.json"
    path.write_text(json.dumps(records))
    return path


def test_temporal_r1_fractions_become_seconds(tmp_path):
    path = _temporal_r1(tmp_path, TEMPORAL_R1)
    samples = import_dataset("temporal_r1", annotations=path, video_dir=tmp_path / "charades")
    assert [s.id for s in samples] == ["charades_train-0", "y6r7t-light", "charades_train-2"]
    first, second, third = samples
    assert first.task == "temporal_grounding"
    assert first.intervals == [(3.0, 7.5)] and first.duration == 30.0
    assert first.video == str(tmp_path / "charades" / "AO8RW.mp4")
    assert first.question == TEMPORAL_R1[0]["problem"] and first.meta["problem"] == TEMPORAL_R1[0]["problem"]
    assert first.meta["dataset"] == "charades_train"
    assert second.intervals == [(10.0, 15.0)] and second.video == "/data/Y6R7T.mp4"
    assert third.intervals == [(0.0, 1.0), (5.0, 6.0)]
    assert third.question == 'When does "the dog barks" happen in the video?'


def test_temporal_r1_seconds_unit(tmp_path):
    records = [{"video": "a.mp4", "problem": "p", "solution": [3.0, 7.5], "duration": 30.0}]
    (sample,) = import_dataset("temporal_r1", annotations=_temporal_r1(tmp_path, records), solution_unit="seconds")
    assert sample.intervals == [(3.0, 7.5)] and sample.video == "a.mp4"


def test_temporal_r1_seconds_unit_refuses_a_file_of_fractions(tmp_path):
    # Every value <= 1 over the whole file: fractions imported as seconds would be a silent mistake.
    path = _temporal_r1(tmp_path, TEMPORAL_R1)
    with pytest.raises(DataError, match="every solution value in the file is <= 1.*solution_unit 'fraction'"):
        import_dataset("temporal_r1", annotations=path, solution_unit="seconds")
    short = [{"video": "a.mp4", "problem": "p", "solution": [0.2, 0.9], "duration": 30.0},
             {"video": "b.mp4", "problem": "p", "solution": [0.5, 2.5], "duration": 30.0}]
    assert len(import_dataset("temporal_r1", annotations=_temporal_r1(tmp_path, short), solution_unit="seconds")) == 2


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"solution": "<answer>about half way</answer>"}, "cannot read [start, end] pairs"),
        ({"solution": [3.0, 7.5]}, "not a fraction of the video length"),
        ({"solution": [0.5, 0.2]}, "is reversed"),
        ({"video_length": None}, "missing one of ['video_length', 'duration']"),
        ({"video": None}, "missing one of ['video', 'path', 'video_path']"),
        ({"problem": ""}, "missing 'problem' text"),
    ],
)
def test_temporal_r1_bad_record_names_file_and_index(tmp_path, change, message):
    path = _temporal_r1(tmp_path, [TEMPORAL_R1[0], {**TEMPORAL_R1[0], **change}])
    with pytest.raises(DataError) as err:
        import_dataset("temporal_r1", annotations=path)
    assert str(err.value).startswith(f"{path}[1]: ")
    assert message in str(err.value)


# --- dispatch and command line ------------------------------------------------------------------------------


def test_import_dataset_refuses_unknown_format_and_arguments(tmp_path):
    with pytest.raises(ValueError, match=r"unknown dataset format 'kinetics'; known: \['activitynet_captions'"):
        import_dataset("kinetics", annotations="x")
    with pytest.raises(ValueError, match=r"charades_sta: unexpected argument\(s\) \['grounding'\]; missing argument"):
        import_dataset("charades_sta", annotations="x", grounding="y")
    with pytest.raises(DataError, match=r"missing.json: file not found"):
        import_dataset("temporal_r1", annotations=tmp_path / "missing.json")
    bad_json = tmp_path / "bad.json"
    bad_json.write_text('[{"video": "a.mp4",\n "problem": }]')
    with pytest.raises(DataError, match=rf"^{bad_json}:2: invalid JSON"):
        import_dataset("temporal_r1", annotations=bad_json)


def test_cli_writes_a_jsonl_the_loader_reads(tmp_path):
    paths = _charades(tmp_path)
    out = tmp_path / "data" / "charades_train.jsonl"
    video_dir = tmp_path / "data" / "videos"
    cmd = [sys.executable, str(REPO / "scripts" / "import_dataset.py"), "charades_sta",
           "--annotations", str(paths["annotations"]), "--durations", str(paths["durations"]),
           "--video-dir", str(video_dir), "--out", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert "wrote 3 charades_sta samples" in done.stdout
    # videos inside the output folder are written relative to it, so the folder can move
    assert json.loads(out.read_text().splitlines()[0])["video"] == "videos/AO8RW.mp4"
    samples = load_jsonl(out).samples
    assert [s.video for s in samples] == [str(video_dir / f"{v}.mp4") for v in ("AO8RW", "AO8RW", "Y6R7T")]

    bad = subprocess.run(cmd[:3] + ["--annotations", str(paths["annotations"]), "--out", str(out)],
                         capture_output=True, text=True, check=False)
    assert bad.returncode == 2 and "missing argument(s) ['durations', 'video_dir']" in bad.stderr
