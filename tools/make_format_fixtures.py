#!/usr/bin/env python3
"""FLAC and Ogg Vorbis copies of a committed WAV clip, for the decoder-format tests.

What: reads tests/fixtures/audio/music_48k_mono_3s.wav (16-bit PCM, 48 kHz, mono, 3 s of
the music-like signal from make_librosa_fixtures.py: chords, a chirp, noise bursts, a
half-second of near-silence) and writes the same samples as

  tests/fixtures/audio/music_48k_mono_3s.flac   16-bit FLAC (lossless: decoding it must
                                                give exactly the WAV's samples)
  tests/fixtures/audio/music_48k_mono_3s.ogg    Ogg Vorbis, libsndfile's default quality
                                                (lossy: close to, not equal to, the WAV)

Why: so a Rust test can run `moodgrad predict` on FLAC and OGG input and compare it with the
WAV of the same samples (exactly for FLAC, within a tolerance for Vorbis).

Reproducible: the FLAC bytes depend only on the input and libFLAC's version. libsndfile
gives each Ogg stream a random serial number, so the script rewrites it to a fixed value
(OGG_SERIAL) in every page and recomputes the page CRCs; nothing else varies, so running
the script twice gives identical files (with the same soundfile / libsndfile / libvorbis).
The committed files were made with soundfile 0.14.0 (libsndfile 1.2.2 bundled in its
wheel: libFLAC 1.4.3, libVorbis 20200704).

Needs soundfile and numpy only (a venv outside the repo):
  python3 -m venv ~/.venvs/audio && ~/.venvs/audio/bin/pip install soundfile numpy
Run:
  ~/.venvs/audio/bin/python tools/make_format_fixtures.py [--dir tests/fixtures/audio]
It prints, per output, the size, sample rate, channels and the maximum absolute difference
of the decoded samples from the WAV's (as floats in [-1, 1)); it fails if the FLAC is not
bit-exact. CI does not run this; the outputs are committed.
"""

import argparse
import os
import struct

import numpy as np
import soundfile as sf

SOURCE = "music_48k_mono_3s.wav"
OGG_SERIAL = 0x6D6F6F64  # b"mood"


def _ogg_crc_table():
    table = []
    for i in range(256):
        r = i << 24
        for _ in range(8):
            r = ((r << 1) ^ 0x04C11DB7) if r & 0x80000000 else (r << 1)
        table.append(r & 0xFFFFFFFF)
    return table


_CRC = _ogg_crc_table()


def ogg_crc(data):
    """The Ogg page checksum (CRC-32, polynomial 0x04c11db7, not reflected, init 0)."""
    crc = 0
    for byte in data:
        crc = ((crc << 8) & 0xFFFFFFFF) ^ _CRC[((crc >> 24) & 0xFF) ^ byte]
    return crc


def fix_ogg_serial(data, serial):
    """Set every page's bitstream serial number to `serial` and recompute its CRC."""
    out = bytearray(data)
    pos = 0
    while pos < len(out):
        if out[pos : pos + 4] != b"OggS":
            raise ValueError(f"no Ogg page at byte {pos}")
        nsegs = out[pos + 26]
        length = 27 + nsegs + sum(out[pos + 27 : pos + 27 + nsegs])
        struct.pack_into("<I", out, pos + 14, serial)
        struct.pack_into("<I", out, pos + 22, 0)
        struct.pack_into("<I", out, pos + 22, ogg_crc(out[pos : pos + length]))
        pos += length
    return bytes(out)


def main():
    default_dir = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "audio")
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dir", default=default_dir, help="folder holding the WAV; outputs go next to it")
    args = ap.parse_args()

    src = os.path.join(args.dir, SOURCE)
    info = sf.info(src)
    if info.subtype != "PCM_16":
        raise SystemExit(f"{src}: expected 16-bit PCM, got {info.subtype}")
    pcm, sr = sf.read(src, dtype="int16", always_2d=True)
    ref = pcm.astype(np.float64) / 32768.0
    stem = os.path.splitext(src)[0]

    flac = stem + ".flac"
    sf.write(flac, pcm, sr, format="FLAC", subtype="PCM_16")

    ogg = stem + ".ogg"
    sf.write(ogg, pcm, sr, format="OGG", subtype="VORBIS")
    with open(ogg, "rb") as f:
        data = f.read()
    with open(ogg, "wb") as f:
        f.write(fix_ogg_serial(data, OGG_SERIAL))

    flac_pcm, flac_sr = sf.read(flac, dtype="int16", always_2d=True)
    if flac_sr != sr or flac_pcm.shape != pcm.shape or not np.array_equal(flac_pcm, pcm):
        raise SystemExit(f"{flac}: decoded samples differ from the WAV's")
    print(f"{os.path.basename(src)}: {info.subtype}, {sr} Hz, {pcm.shape[1]} ch, {pcm.shape[0]} frames, "
          f"{os.path.getsize(src)} bytes")
    for path in (flac, ogg):
        y, ysr = sf.read(path, dtype="float64", always_2d=True)
        n = min(len(y), len(ref))
        diff = float(np.max(np.abs(y[:n] - ref[:n]))) if n else float("nan")
        i = sf.info(path)
        print(f"{os.path.basename(path)}: {i.subtype}, {ysr} Hz, {y.shape[1]} ch, {len(y)} frames, "
              f"{os.path.getsize(path)} bytes, max |decoded - wav| = {diff:.6g}")


if __name__ == "__main__":
    main()
