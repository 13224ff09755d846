"""Writes for transcoding: ``jobs`` (queue, cancel, state changes, ending a job), ``pipeline``
(running a job), ``maintenance`` (reaper, work dirs, replaced outputs), ``media_files`` (originals
with their probe) and ``videos`` (deleting a video with its jobs)."""
