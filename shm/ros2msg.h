/* ros2msg.h — pi0rt messages as ROS 2 messages: the ros2msg schema texts and CDR
 * (little-endian, encapsulation 00 01 00 00) encoders and decoders that pi0rt-shm record
 * and play use. Internal to pi0rt-shm.
 *
 *   pi0.Image        <-> sensor_msgs/msg/Image (rgb8, bgr8, mono8; header.frame_id = topic,
 *                        the camera frame counter travels as the MCAP message sequence)
 *   pi0.JointState   <-> sensor_msgs/msg/JointState (no joint names)
 *   pi0.ActionChunk   -> trajectory_msgs/msg/JointTrajectory (for viewers; point k at
 *                        time_from_start = k * period, header stamp = t0)
 *                    <-> pi0rt_msgs/msg/ActionChunk (lossless, replayed)
 *   pi0.Action       <-> pi0rt_msgs/msg/Action
 *   pi0.NodeStatus   <-> pi0rt_msgs/msg/NodeStatus
 *
 * Time stamps inside messages are Unix nanoseconds: encoders add `offset` (the
 * CLOCK_MONOTONIC -> Unix offset of the recording) to every non-zero stamp; decoders
 * return Unix stamps and the caller maps them back onto its clock. */
#ifndef PI0_ROS2MSG_H
#define PI0_ROS2MSG_H

#include <stddef.h>
#include <stdint.h>

#include "mcap.h"

enum pi0__ros2_kind {
    PI0__ROS2_NONE = 0,
    PI0__ROS2_IMAGE,
    PI0__ROS2_JOINT_STATE,
    PI0__ROS2_TRAJECTORY,
    PI0__ROS2_CHUNK,
    PI0__ROS2_ACTION,
    PI0__ROS2_STATUS,
    PI0__ROS2_KINDS
};

/* ROS 2 type name ("sensor_msgs/msg/Image") and ros2msg schema text of a kind. */
const char *pi0__ros2_name(int kind);
const char *pi0__ros2_schema(int kind);
/* Kind of a schema name ("pkg/msg/Type" or "pkg/Type"); PI0__ROS2_NONE if unknown. */
int pi0__ros2_kind_of(const char *schema_name);
/* The pi0rt shm type a kind is replayed as (PI0_TYPE_*), NULL if it is not replayable. */
const char *pi0__ros2_pi0_type(int kind);
/* The kinds a pi0rt shm type is recorded as (0, 1 or 2 of them); returns the count. */
int pi0__ros2_kinds_of_pi0(const char *pi0_type, int kinds[2]);

/* Encodes a validated pi0 payload (size bytes, already checked with pi0_*_check) as the
 * CDR of `kind` into out (replacing its contents). frame_id: header.frame_id where the type has
 * one. */
int pi0__ros2_encode(int kind, const void *payload, size_t size, int64_t offset,
                     const char *frame_id, pi0__buf *out);

/* Decodes untrusted CDR of `kind` into a pi0 payload (replacing out's contents; stamps
 * stay Unix nanoseconds). sequence: the MCAP message sequence (the image frame counter).
 * PI0_EFORMAT with a detail naming the field, PI0_ENOTSUP for an image encoding pi0rt
 * has no pixel format for, PI0_ERANGE for more joints/actions than the pi0 type holds. */
int pi0__ros2_decode(int kind, const uint8_t *cdr, size_t len, uint32_t sequence,
                     pi0__buf *out);

#endif
