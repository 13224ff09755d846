from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from media_library.models import Video
from media_library.selectors import video_playback_url
from unpuzzle.exceptions import DomainError
from uploads.models import UploadSession
from uploads.services.finalize import upload_session_ingest


class Command(BaseCommand):
    help = (
        "Take a local video file through the same path as an upload (store the original, probe, "
        "transcode) and print the video id. With --wait, run the transcode and print the final "
        "status and playback URL; exits non-zero with the reason when the video fails."
    )

    def add_arguments(self, parser):
        parser.add_argument("path", help="video file on this machine (it is copied, not moved)")
        parser.add_argument("--title", default="", help="video title (default: the file name)")
        parser.add_argument("--owner", required=True, help="username of the instructor who owns the video")
        parser.add_argument("--wait", action="store_true", help="transcode in this process and wait for the end")

    def handle(self, *args, path, title, owner, wait, **options):
        try:
            user = get_user_model().objects.get(username=owner)
        except get_user_model().DoesNotExist as exc:
            raise CommandError(f"there is no user {owner!r}; create one or pass an existing --owner") from exc
        try:
            session = upload_session_ingest(owner=user, path=path, title=title)
        except DomainError as exc:
            raise CommandError(exc.message) from exc
        if session.status == UploadSession.Status.FAILED:
            raise CommandError(f"{path} was not accepted: {session.error_detail or session.error}")
        if session.status != UploadSession.Status.FINALIZED:
            raise CommandError(f"{path} could not be stored: {session.error_detail or session.error}")
        video = session.video
        if video is None:
            raise CommandError(f"upload {session.id} was finalized but is linked to no video")
        self.stdout.write(str(video.id))
        if not wait:
            return
        if video.duplicate_of_id is not None and video.status != Video.Status.READY:
            # The same file as a video still being transcoded: this one becomes ready with it.
            call_command("transcode", str(video.duplicate_of_id), wait=True, stdout=self.stdout, stderr=self.stderr)
            video.refresh_from_db()
        if video.status == Video.Status.READY:
            self.stdout.write(f"video {video.id} is ready (same file as video {video.duplicate_of_id})")
            self.stdout.write(f"playback: {video_playback_url(video=video)}")
            return
        call_command("transcode", str(video.id), wait=True, stdout=self.stdout, stderr=self.stderr)
