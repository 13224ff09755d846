from django.core.management.base import BaseCommand

from uploads.services.cleanup import direct_uploads_cleanup, uploads_cleanup


class Command(BaseCommand):
    help = (
        "Expire unfinished uploads past their Upload-Expires (deleting their part files), delete rows of "
        "uploads that ended more than 7 days ago, remove part files no upload owns, and abort abandoned "
        "direct-upload multipart uploads under originals/ (S3/B2 storage)."
    )

    def handle(self, *args, **options):
        result = uploads_cleanup()
        aborted = direct_uploads_cleanup()
        self.stdout.write(
            f"expired {result['expired']} uploads, purged {result['purged']} old rows, "
            f"removed {result['orphans']} orphan part files, aborted {aborted} abandoned multipart uploads"
        )
