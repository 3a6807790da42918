/* pi0_shm_msg.c — checks of the fixed-layout message types of pi0_shm.h.
 *
 * Payloads come from shared memory, so every count and size is untrusted: each check
 * reads only the fixed header inside `size` and rejects anything inconsistent. */
#include <string.h>

#include "pi0_shm.h"

uint32_t pi0_pixel_bytes(uint32_t format) {
    switch (format) {
    case PI0_PIX_RGB8:
    case PI0_PIX_BGR8:
        return 3;
    case PI0_PIX_GRAY8:
        return 1;
    default:
        return 0;
    }
}

size_t pi0_image_bytes(uint32_t width, uint32_t height, uint32_t format) {
    uint64_t bpp = pi0_pixel_bytes(format);
    if (!bpp || !width || !height) return 0;
    uint64_t bytes = sizeof(pi0_image) + (uint64_t)width * bpp * height;
    return bytes > PI0_SHM_PAYLOAD_MAX ? 0 : (size_t)bytes;
}

int pi0_image_check(const void *payload, size_t size) {
    if (!payload || size < sizeof(pi0_image))
        return pi0_errorf(PI0_EFORMAT, "image: %zu bytes, shorter than its 64-byte header",
                          size);
    pi0_image h;
    memcpy(&h, payload, sizeof h);
    uint32_t bpp = pi0_pixel_bytes(h.format);
    if (!bpp) return pi0_errorf(PI0_EFORMAT, "image: unknown pixel format %u", h.format);
    if (!h.width || !h.height)
        return pi0_errorf(PI0_EFORMAT, "image: empty size %ux%u", h.width, h.height);
    if ((uint64_t)h.stride < (uint64_t)h.width * bpp)
        return pi0_errorf(PI0_EFORMAT, "image: stride %u < width %u * %u bytes", h.stride,
                          h.width, bpp);
    uint64_t need = (uint64_t)h.stride * h.height;
    if (h.data_bytes != need)
        return pi0_errorf(PI0_EFORMAT, "image: data_bytes %u != stride %u * height %u",
                          h.data_bytes, h.stride, h.height);
    if (need > size - sizeof(pi0_image))
        return pi0_errorf(
            PI0_EFORMAT, "image: %ux%u stride %u needs %llu bytes, sample has %zu", h.width,
            h.height, h.stride, (unsigned long long)need, size - sizeof(pi0_image));
    return 0;
}

int pi0_joint_state_check(const void *payload, size_t size) {
    if (!payload || size < sizeof(pi0_joint_state))
        return pi0_errorf(PI0_EFORMAT, "joint state: %zu bytes, expected %zu", size,
                          sizeof(pi0_joint_state));
    uint32_t n;
    memcpy(&n, (const char *)payload + offsetof(pi0_joint_state, n), sizeof n);
    if (n > PI0_JOINTS_MAX)
        return pi0_errorf(PI0_EFORMAT, "joint state: n = %u > %d", n, PI0_JOINTS_MAX);
    return 0;
}

int pi0_action_chunk_check(const void *payload, size_t size) {
    size_t head = offsetof(pi0_action_chunk, actions);
    if (!payload || size < head)
        return pi0_errorf(PI0_EFORMAT, "action chunk: %zu bytes, less than its %zu-byte header",
                          size, head);
    uint32_t horizon, dim;
    memcpy(&horizon, (const char *)payload + offsetof(pi0_action_chunk, horizon), 4);
    memcpy(&dim, (const char *)payload + offsetof(pi0_action_chunk, dim), 4);
    if (horizon == 0 || horizon > PI0_CHUNK_HORIZON_MAX)
        return pi0_errorf(PI0_EFORMAT, "action chunk: horizon %u not in 1..%d", horizon,
                          PI0_CHUNK_HORIZON_MAX);
    if (dim == 0 || dim > PI0_CHUNK_DIM_MAX)
        return pi0_errorf(PI0_EFORMAT, "action chunk: dim %u not in 1..%d", dim,
                          PI0_CHUNK_DIM_MAX);
    size_t need = head + (size_t)horizon * dim * sizeof(float);
    if (size < need)
        return pi0_errorf(PI0_EFORMAT, "action chunk: %zu bytes, %u x %u actions need %zu",
                          size, horizon, dim, need);
    return 0;
}

int pi0_action_check(const void *payload, size_t size) {
    if (!payload || size < sizeof(pi0_action))
        return pi0_errorf(PI0_EFORMAT, "action: %zu bytes, expected %zu", size,
                          sizeof(pi0_action));
    uint32_t dim;
    memcpy(&dim, (const char *)payload + offsetof(pi0_action, dim), 4);
    if (dim > PI0_ACTION_DIM_MAX)
        return pi0_errorf(PI0_EFORMAT, "action: dim %u > %d", dim, PI0_ACTION_DIM_MAX);
    return 0;
}

int pi0_node_status_check(const void *payload, size_t size) {
    if (!payload || size < sizeof(pi0_node_status))
        return pi0_errorf(PI0_EFORMAT, "node status: %zu bytes, expected %zu", size,
                          sizeof(pi0_node_status));
    const char *msg = (const char *)payload + offsetof(pi0_node_status, message);
    if (!memchr(msg, 0, sizeof(((pi0_node_status *)0)->message)))
        return pi0_errorf(PI0_EFORMAT, "node status: message not NUL-terminated");
    uint32_t state;
    memcpy(&state, (const char *)payload + offsetof(pi0_node_status, state), 4);
    if (state < PI0_NODE_STARTING || state > PI0_NODE_ERROR)
        return pi0_errorf(PI0_EFORMAT, "node status: unknown state %u", state);
    return 0;
}
