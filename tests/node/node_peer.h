/* node_peer.h — the test camera's pixel pattern, shared by node_peer (which publishes it)
 * and test_node (which writes the same image for pi0rt-infer). */
#ifndef PI0_NODE_PEER_H
#define PI0_NODE_PEER_H

#include <stdint.h>

/* RGB channel c of pixel (x, y). */
static inline uint8_t node_peer_pixel(uint32_t x, uint32_t y, uint32_t c, int seed) {
    return (uint8_t)((x * 7u + y * 13u + c * 50u + (uint32_t)seed * 31u + ((x * y) >> 3)) &
                     255u);
}

#endif
