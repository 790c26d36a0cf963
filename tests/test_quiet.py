"""keras_reid._quiet: TensorFlow's C++ chatter is dropped, everything else is kept."""

from keras_reid._quiet import NoiseFilter, drop_noise

# Lines as TensorFlow 2.21 writes them to fd 2 (copied from real runs).
NOISE = [
    b"I0000 00:00:1796095079.746862   20170 port.cc:153] oneDNN custom operations are on.\n",
    b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n",
    b"I0000 00:00:1796099613.113366   29833 coordination_service.cc:502] Waiting for 1/2 tasks "
    b"to connect.\n",
    b"I0000 00:00:1796099613.113375   29833 coordination_service.cc:505] Example stragglers:\n",
    b"/job:worker/replica:0/task:1\n",
    # The tail of a multi-line notice of a barrier that timed out, its first line an I line.
    b"# of tasks that reached the barrier: 1/2.\n",
    b"The first task at the barrier: /job:worker/replica:0/task:0. Some timed out task names:\n",
    b" [type.googleapis.com/tensorflow.BarrierError='\\n\\x0ekeras_reid_end'] "
    b"[type.googleapis.com/tensorflow.CoordinationServiceError='']\n",
    b" [type.googleapis.com/tensorflow.CoordinationServiceError=''] "
    b"[type.googleapis.com/tensorflow.BarrierError='\\n\\x0ekeras_reid_end']\n",
]
KEPT = [
    b"keras-reid train: error: TF_CONFIG is not valid JSON (...)\n",
    b"E0000 00:00:1796099613.1 29833 grpc_server_lib.cc:12] Could not start gRPC server\n",
    b"multi-worker training: task worker 0 of 2, 2 replicas in all\n",
    b"the chief is /job:worker/replica:0/task:0\n",
    b"Epoch 1/2\r12/12 - 3s\n",
    b"# of identities: 12/751.\n",
    b"The first task at the barrier was late\n",
    b"BarrierError: a line of another program\n",
    b" [type.googleapis.com/tensorflow.CoordinationServiceError='']\n",
]


def test_noise_is_dropped_and_messages_kept_in_order():
    mixed = b"".join(line for pair in zip(NOISE, KEPT, strict=True) for line in pair)
    assert drop_noise(mixed) == b"".join(KEPT)
    assert drop_noise(b"".join(NOISE)) == b""


# A failed decode in a tf.data pipeline, as TensorFlow 2.21 writes it: libjpeg's
# own line, then the op's status, continued on tab-indented lines.
DECODER = [
    b"Improper call to JPEG library in state 201\n",
    b"W0000 00:00:1796654686.784131   18076 local_rendezvous.cc:412] Local rendezvous is "
    b"aborting with status: INVALID_ARGUMENT: jpeg::Uncompress failed. Invalid JPEG data or "
    b"crop window.\n",
    b"\t [[{{node decode_image/DecodeImage}}]]\n",
    b"\t [[IteratorGetNext]]\n",
    b"Corrupt JPEG data: 216 extraneous bytes before marker 0xc4\n",
    b"Bogus Huffman table definition\n",
    b"JPEG datastream contains no image\n",
    b"Not a JPEG file: starts with 0x74 0x68\n",
    b"Premature end of JPEG file\n",
    b"W0000 00:00:1796654714.430402   18197 local_rendezvous.cc:412] Local rendezvous is "
    b"aborting with status: INVALID_ARGUMENT: assertion failed: [not a JPEG, PNG, BMP or GIF "
    b"image (empty or damaged file?):] [text.jpg]\n",
    b"\t [[{{node Assert/Assert}}]]\n",
]
# What is not noise keeps its continuation lines, and a line naming a JPEG is no libjpeg line.
REAL = [
    b"E0000 00:00:1796099613.1 29833 grpc_server_lib.cc:12] Could not start gRPC server\n",
    b"\t [[{{node Assert/Assert}}]]\n",
    b"Improper call to JPEG library in state 201 while reading /data/x.jpg\n",
    b"keras-reid search: error: 1 unreadable image(s), e.g. /d/x.jpg (truncated JPEG); ...\n",
]


def test_decoder_lines_and_their_continuations_are_dropped_in_any_chunks():
    assert drop_noise(b"".join(DECODER + REAL)) == b"".join(REAL)
    assert drop_noise(b"".join(REAL + DECODER)) == b"".join(REAL)
    # The command's filter sees the stream in pieces: the state carries over.
    noise = NoiseFilter()
    assert b"".join(noise(line) for line in DECODER + REAL + DECODER) == b"".join(REAL)
