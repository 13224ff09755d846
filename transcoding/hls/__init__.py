"""The HLS files ffmpeg writes: MPEG-TS segment scanning and playlist measuring/writing, with no Django imports.

``ts`` reads segments (codec string, IDR byte ranges); ``playlists`` holds the output
layout, reads media playlists and writes the measured master and I-frame playlists.
"""
