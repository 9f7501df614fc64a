"""kombu's filesystem transport, with messages written atomically.

The stock transport creates the message file under its final name and then writes into it;
a consumer polling the folder can move and read the file in between, get an empty or
half-written payload, and the worker dies on the JSON error ("Unrecoverable error:
JSONDecodeError"). The reliability tests hit it within minutes. Here a message is written
under a name no consumer looks at and renamed into place once complete: a rename within
one folder is atomic, so a consumer sees the whole message or none of it.
"""

import os
import uuid
from time import monotonic

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps


class Channel(filesystem.Channel):
    def _put(self, queue, payload, **kwargs):
        name = "{}_{}.{}.msg".format(int(round(monotonic() * 1000)), uuid.uuid4(), queue)
        final = os.path.join(self.data_folder_out, name)
        # A leading dot and no ".msg" ending: _get never picks this name up.
        partial = os.path.join(self.data_folder_out, f".{name}.partial")
        try:
            with open(partial, "wb") as f:
                f.write(str_to_bytes(dumps(payload)))
            os.replace(partial, final)
        except OSError as exc:
            raise ChannelError(f"Cannot add file {final!r} to directory") from exc


class Transport(filesystem.Transport):
    Channel = Channel
