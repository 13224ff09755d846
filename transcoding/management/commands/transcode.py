import time

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from media_library.models import Video
from media_library.selectors import video_playback_url
from transcoding.models import TranscodeJob
from transcoding.services.chunks import transcode_chunks_run
from transcoding.services.jobs import transcode_enqueue
from transcoding.services.pipeline import transcode_run

POLL_SECONDS = 2.0


class Command(BaseCommand):
    help = (
        "Queue a video for HLS transcoding (same path as an upload or the admin's re-transcode). "
        "With --wait, run the job in this process and print the final status; exits non-zero when it fails."
    )

    def add_arguments(self, parser):
        parser.add_argument("video_id", help="UUID of the video")
        parser.add_argument("--wait", action="store_true", help="run the job here and wait for its end")

    def handle(self, *args, video_id, wait, **options):
        try:
            video = Video.objects.get(pk=video_id)
        except (Video.DoesNotExist, ValidationError) as exc:
            raise CommandError(f"there is no video with id {video_id}") from exc
        if video.media_file_id is None:
            raise CommandError(f"video {video.id} has no original file to transcode (it only has a legacy URL)")
        job = transcode_enqueue(video=video)
        video.refresh_from_db()
        if job is None:
            raise CommandError(f"video {video.id} is blocked: {video.status_reason}")
        self.stdout.write(f"video {video.id}: job {job.id} {job.status}")
        if not wait:
            return
        job = self._run_to_end(job)
        video.refresh_from_db()
        self.stdout.write(f"job {job.id} {job.status} after {job.attempts} attempt(s); video {video.status}")
        if video.status != Video.Status.READY or job.status != TranscodeJob.Status.SUCCEEDED:
            raise CommandError(f"video {video.id} is {video.status}: {job.error or video.status_reason}")
        self.stdout.write(f"playback: {video.hls_master_key} ({video_playback_url(video=video)})")

    def _run_to_end(self, job: TranscodeJob) -> TranscodeJob:
        """Run the job here, again after each requeue; when a worker holds it, wait for that worker."""
        last = None
        while True:
            transcode_run(job_id=job.id)  # a no-op unless the job is queued
            # a long source's chunks: encoded here too, with whichever transcode workers are running
            transcode_chunks_run(prefer_job=job.id)
            job.refresh_from_db()
            if job.status not in TranscodeJob.ACTIVE_STATUSES:
                return job
            if job.status == TranscodeJob.Status.RUNNING:
                if (job.status, job.progress) != last:
                    self.stdout.write(f"job {job.id} running in a worker: {job.progress}%")
                    last = (job.status, job.progress)
                time.sleep(POLL_SECONDS)
