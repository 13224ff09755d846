"""JSON shapes of uploads for people and dashboards."""

from __future__ import annotations

from rest_framework import serializers

from uploads.models import UploadSession
from uploads.selectors import upload_error_code, upload_retryable

DUPLICATE_OF_HELP = (
    "The file was uploaded before: the id of the video whose output video_id shares (no new transcode), else null"
)


class UploadProgressSerializer(serializers.ModelSerializer):
    progress = serializers.FloatField(read_only=True, allow_null=True, help_text="Percent stored")
    video_id = serializers.UUIDField(read_only=True, allow_null=True)
    duplicate_of = serializers.UUIDField(
        source="video.duplicate_of_id", read_only=True, allow_null=True, default=None, help_text=DUPLICATE_OF_HELP
    )
    error_code = serializers.SerializerMethodField(help_text="Why it failed, as a code; empty without an error")
    retryable = serializers.SerializerMethodField(help_text="True when uploading the same file again can help")

    class Meta:
        model = UploadSession
        fields = [
            "id",
            "status",
            "offset",
            "length",
            "progress",
            "filename",
            "video_id",
            "duplicate_of",
            "error",
            "error_code",
            "retryable",
            "expires_at",
        ]
        read_only_fields = fields

    def get_error_code(self, session: UploadSession) -> str:
        return upload_error_code(session=session)

    def get_retryable(self, session: UploadSession) -> bool:
        return upload_retryable(session=session)


class DirectUploadCreateSerializer(serializers.Serializer):
    filename = serializers.CharField(max_length=255, help_text="Original file name, e.g. lecture.mp4")
    file_size = serializers.IntegerField(min_value=1, help_text="Exact size of the file in bytes")
    content_type = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")
    title = serializers.CharField(max_length=255, required=False, allow_blank=True, default="")


class PartUrlSerializer(serializers.Serializer):
    part_number = serializers.IntegerField()
    url = serializers.URLField(help_text="Presigned UploadPart URL: PUT the part's bytes here, keep the ETag header")


class SignedPartsSerializer(serializers.Serializer):
    parts = PartUrlSerializer(many=True)
    urls_expire_at = serializers.DateTimeField(source="expires_at")


class DirectUploadStartSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    part_size = serializers.IntegerField(help_text="Bytes per part; only the last part may be shorter")
    part_count = serializers.IntegerField()
    key = serializers.CharField(help_text="Object key the file is stored under")
    parts = PartUrlSerializer(many=True, help_text="URLs for the first parts; ask /parts/ for the rest")
    urls_expire_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField(help_text="The upload is aborted if not completed by then")


class PartNumbersSerializer(serializers.Serializer):
    part_numbers = serializers.ListField(child=serializers.IntegerField(), allow_empty=False)


class CompletedPartSerializer(serializers.Serializer):
    part_number = serializers.IntegerField()
    etag = serializers.CharField(max_length=128, help_text="The ETag header the part's PUT returned")


class CompleteSerializer(serializers.Serializer):
    parts = CompletedPartSerializer(many=True, allow_empty=False)


class StoredPartSerializer(serializers.Serializer):
    part_number = serializers.IntegerField()
    size = serializers.IntegerField()
    etag = serializers.CharField()


class DirectUploadSerializer(serializers.Serializer):
    """A direct upload's state; ``parts`` and ``bytes_stored`` come from the bucket while it is open."""

    id = serializers.UUIDField()
    status = serializers.CharField()
    filename = serializers.CharField()
    file_size = serializers.IntegerField()
    key = serializers.CharField(help_text="Object key the file is stored under")
    part_size = serializers.IntegerField()
    part_count = serializers.IntegerField()
    bytes_stored = serializers.IntegerField()
    progress = serializers.FloatField(help_text="Percent of file_size stored")
    parts = StoredPartSerializer(many=True, help_text="Parts the bucket holds (ListParts) while the upload is open")
    missing_parts = serializers.ListField(child=serializers.IntegerField(), help_text="Part numbers not stored yet")
    video_id = serializers.UUIDField(allow_null=True)
    duplicate_of = serializers.UUIDField(allow_null=True, help_text=DUPLICATE_OF_HELP)
    media_file_id = serializers.UUIDField(allow_null=True)
    error = serializers.CharField(allow_blank=True)
    error_code = serializers.CharField(allow_blank=True, help_text="Why it failed, as a code; empty without an error")
    retryable = serializers.BooleanField(help_text="True when uploading the file again can help")
    expires_at = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()
    completed_at = serializers.DateTimeField(allow_null=True)
