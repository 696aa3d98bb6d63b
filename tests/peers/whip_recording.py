"""Recording of one WHIP session of the WHIP receiver (whip_receiver.py).

Each session gets a folder with:
  video.h264   the H.264 access units as aiortc's depacketizer built them
               (Annex-B with start codes), before decoding;
  video_times.txt
               one line per access unit, written as it arrives. Its
               fields: arrival time (Unix seconds), RTP timestamp (90 kHz),
               and 1 for an IDR access unit or 0 otherwise;
  audio.wav    the decoded audio, 16-bit PCM at the track's rate (48 kHz
               for Opus);
  report.json  what arrived and when, rewritten every 0.5 s and on close.

report.json fields (times are Unix seconds, float; null until known):
  session, id, path          session number, resource id, stream path
  post_s, answer_s           POST arrived, answer ready
  answer_setup               a=setup of the answer (passive: DTLS server)
  ice_connected_s            ICE connected or completed
  connected_s                ICE and DTLS connected
  connection_state           aiortc's connectionState at the last write
  video                      null without a video m-line, else: codec
                             (mimeType), payload_type, clock_rate,
                             parameters (fmtp of the answer), access_units,
                             bytes, idr_access_units, idr_s (arrival of
                             each IDR access unit), first_access_unit_s,
                             first_idr_s, frames_decoded, width, height,
                             first_frame_s (first decoded frame)
  audio                      null without an audio m-line, else: codec,
                             payload_type, clock_rate, channels, parameters,
                             frames_decoded, samples (per channel),
                             sample_rate, channels_decoded, rms_dbfs (over
                             all decoded samples), first_frame_s
  pli_sent_s                 every PLI sent (aiortc's own and --pli-after-s)
  fir_sent_s                 every FIR sent: always empty, aiortc sends none
  delete_received, delete_s  a DELETE with a valid token arrived
  closed_s                   the peer connection closed

The access units are taken from the decoder thread's input queue:
install_decoder_hook() wraps aiortc 1.16's decoder_worker so that each
(codec, frame) task it reads is also written to the session that owns the
track. The hook relies on aiortc internals (decoder_worker's arguments and
RemoteStreamTrack._queue), which is why scripts/install-peers.sh pins
aiortc's version.
"""

import array
import json
import math
import os
import threading
import time
import wave

from aiortc import rtcrtpreceiver
from aiortc.mediastreams import MediaStreamError

NAL_TYPE_IDR = 5
FULL_SCALE_S16 = 32768.0
# Level reported for digital silence, which has no finite dBFS value, and
# JSON has no -Infinity. Any 16-bit signal that is not silence is above -97 dBFS.
SILENCE_DBFS = -200.0

# Map of id(track queue) to (track queue, Recording), read by the decoder threads.
_RECORDINGS_BY_QUEUE = {}
_REGISTRY_LOCK = threading.Lock()


class RecordingQueue:
    """The decoder's input queue, copying every H.264 frame to a Recording."""

    def __init__(self, inner, recording):
        self.inner = inner
        self.recording = recording

    def get(self, *args, **kwargs):
        task = self.inner.get(*args, **kwargs)
        if task is not None:
            codec, encoded_frame = task
            if codec.name == "H264":
                self.recording.add_access_unit(encoded_frame.data, encoded_frame.timestamp)
        return task

    def __getattr__(self, name):
        return getattr(self.inner, name)


def install_decoder_hook():
    original = rtcrtpreceiver.decoder_worker

    def recording_decoder_worker(loop, input_q, output_q, decode_error):
        with _REGISTRY_LOCK:
            entry = _RECORDINGS_BY_QUEUE.get(id(output_q))
        if entry is not None and entry[0] is output_q:
            input_q = RecordingQueue(input_q, entry[1])
        original(loop, input_q, output_q, decode_error)

    rtcrtpreceiver.decoder_worker = recording_decoder_worker


def nal_types(access_unit: bytes):
    """Yield the NAL unit types of an Annex-B access unit."""
    start = access_unit.find(b"\x00\x00\x01")
    while start != -1 and start + 3 < len(access_unit):
        yield access_unit[start + 3] & 0x1F
        start = access_unit.find(b"\x00\x00\x01", start + 3)


def rms_dbfs(sum_of_squares: float, count: int):
    if count == 0:
        return None
    rms = math.sqrt(sum_of_squares / count) / FULL_SCALE_S16
    return round(20 * math.log10(rms), 2) if rms > 0 else SILENCE_DBFS


class Recording:
    """Files and report of one session, fed from the event loop and the decoder thread."""

    def __init__(self, directory: str, number: int, session_id: str, path: str, post_s: float):
        os.makedirs(directory, exist_ok=True)
        self.directory = directory
        self.lock = threading.Lock()
        self.h264 = open(os.path.join(directory, "video.h264"), "wb")
        self.times = open(os.path.join(directory, "video_times.txt"), "w", encoding="ascii")
        self.wav = None
        self.audio_sum_of_squares = 0.0
        self.audio_values = 0
        self.state = {
            "session": number,
            "id": session_id,
            "path": path,
            "post_s": post_s,
            "answer_s": None,
            "answer_setup": None,
            "ice_connected_s": None,
            "connected_s": None,
            "connection_state": "new",
            "video": None,
            "audio": None,
            "pli_sent_s": [],
            "fir_sent_s": [],
            "delete_received": False,
            "delete_s": None,
            "closed_s": None,
        }

    def watch_track(self, track):
        """Record the track's access units when its decoder thread starts."""
        if track.kind == "video":
            with _REGISTRY_LOCK:
                _RECORDINGS_BY_QUEUE[id(track._queue)] = (track._queue, self)

    def forget_track(self, track):
        with _REGISTRY_LOCK:
            entry = _RECORDINGS_BY_QUEUE.get(id(track._queue))
            if entry is not None and entry[1] is self:
                del _RECORDINGS_BY_QUEUE[id(track._queue)]

    def set_codecs(self, video: dict, audio: dict):
        with self.lock:
            if video is not None:
                self.state["video"] = {
                    **video,
                    "access_units": 0,
                    "bytes": 0,
                    "idr_access_units": 0,
                    "idr_s": [],
                    "first_access_unit_s": None,
                    "first_idr_s": None,
                    "frames_decoded": 0,
                    "width": None,
                    "height": None,
                    "first_frame_s": None,
                }
            if audio is not None:
                self.state["audio"] = {
                    **audio,
                    "frames_decoded": 0,
                    "samples": 0,
                    "sample_rate": None,
                    "channels_decoded": None,
                    "rms_dbfs": None,
                    "first_frame_s": None,
                }

    def note(self, **fields):
        with self.lock:
            self.state.update(fields)

    def note_once(self, field: str, value):
        with self.lock:
            if self.state[field] is None:
                self.state[field] = value

    def note_pli(self):
        with self.lock:
            self.state["pli_sent_s"].append(time.time())

    def add_access_unit(self, data: bytes, rtp_timestamp: int):
        now = time.time()
        idr = NAL_TYPE_IDR in set(nal_types(data))
        with self.lock:
            video = self.state["video"]
            if self.h264.closed or video is None:
                return
            self.h264.write(data)
            # Flushed per line, so a receiver killed mid-stream leaves
            # every arrival up to its end.
            self.times.write(f"{now:.6f} {rtp_timestamp} {int(idr)}\n")
            self.times.flush()
            video["access_units"] += 1
            video["bytes"] += len(data)
            if video["first_access_unit_s"] is None:
                video["first_access_unit_s"] = now
            if idr:
                video["idr_access_units"] += 1
                video["idr_s"].append(now)
                if video["first_idr_s"] is None:
                    video["first_idr_s"] = now

    async def consume_video(self, track):
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            now = time.time()
            with self.lock:
                video = self.state["video"]
                video["frames_decoded"] += 1
                video["width"] = frame.width
                video["height"] = frame.height
                if video["first_frame_s"] is None:
                    video["first_frame_s"] = now

    async def consume_audio(self, track):
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            self.add_audio_frame(frame)

    def add_audio_frame(self, frame):
        """Append a decoded frame (packed s16, as aiortc's Opus decoder gives)."""
        now = time.time()
        channels = len(frame.layout.channels)
        samples = array.array("h", bytes(frame.planes[0])[: frame.samples * channels * 2])
        with self.lock:
            audio = self.state["audio"]
            if self.wav is None:
                self.wav = wave.open(os.path.join(self.directory, "audio.wav"), "wb")
                self.wav.setnchannels(channels)
                self.wav.setsampwidth(2)
                self.wav.setframerate(frame.sample_rate)
                audio["sample_rate"] = frame.sample_rate
                audio["channels_decoded"] = channels
                audio["first_frame_s"] = now
            self.wav.writeframes(samples.tobytes())
            self.audio_sum_of_squares += sum(value * value for value in samples)
            self.audio_values += len(samples)
            audio["frames_decoded"] += 1
            audio["samples"] += frame.samples
            audio["rms_dbfs"] = rms_dbfs(self.audio_sum_of_squares, self.audio_values)

    def report(self) -> dict:
        with self.lock:
            return json.loads(json.dumps(self.state))

    def write_report(self):
        """Replace report.json in one step, so a reader never sees half of it."""
        path = os.path.join(self.directory, "report.json")
        partial = path + ".partial"
        with self.lock:
            text = json.dumps(self.state, indent=2)
        with open(partial, "w", encoding="utf-8") as handle:
            handle.write(text + "\n")
        os.replace(partial, path)

    def close_files(self):
        with self.lock:
            self.h264.close()
            self.times.close()
            if self.wav is not None:
                self.wav.close()
