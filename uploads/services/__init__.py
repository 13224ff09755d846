"""Writes for uploads, one module per concern.

``admission`` (checks before an upload is accepted), ``tus`` (tus sessions and their bytes),
``direct`` (direct-to-bucket multipart uploads), ``finalize`` (a complete upload becomes
MediaFile + Video) and ``cleanup`` (expiry and removal of what ended or was abandoned).
"""
