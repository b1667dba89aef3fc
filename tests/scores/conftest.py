from pathlib import Path

import muspy

ABC_TWO_TUNES = """%abc-2.1
% a header comment shared by all tunes
Z: transcriber

X:3
T:First
M:4/4
L:1/4
K:C
CDEF|GABc|]

X:7
T:Second
M:3/4
L:1/8
K:G
G2 A2 B2|d6|]
"""

KERN = """**kern\t**kern
*M4/4\t*M4/4
4c\t4e
4d\t4f
4e\t4g
4f\t4a
*-\t*-
"""


def write_midi(path: Path, notes=((0, 60, 24), (24, 64, 24), (48, 67, 48)), resolution: int = 24) -> Path:
    """A real MIDI file written by muspy."""
    music = muspy.Music(
        resolution=resolution,
        tempos=[muspy.Tempo(time=0, qpm=100.0)],
        tracks=[muspy.Track(program=0, notes=[muspy.Note(t, p, d, 90) for t, p, d in notes])],
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    music.write_midi(str(path))
    return path
