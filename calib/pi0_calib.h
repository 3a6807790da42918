/* pi0_calib.h — robot calibration: the transforms between a robot's units and a π0
 * checkpoint's unnormalized state/action space, read from a robot file (INI).
 *
 * calib knows nothing of models or devices. Normalization with the checkpoint's
 * norm_stats.json belongs to the model; calib sits between the robot and that step:
 *
 *   robot joint state --state_in--> model-space state --(model normalizes)--> ...
 *   ... --(model unnormalizes)--> model-space chunk --actions_out--> robot actions
 *
 * The order of the steps is fixed (the robot file cannot reorder them):
 *   state_in:    1. pick: model dim i takes the robot's joint `index[i]`
 *                2. sign: multiply by sign[i]
 *                3. map:  the named nonlinear map of dim i (e.g. aloha_gripper_to_angular)
 *                4. zero-pad to state_dim
 *   actions_out: 1. delta: add the observation's model-space state to the dims of the
 *                   delta mask (openpi AbsoluteActions)
 *                2. slice: keep the first out_dims columns
 *                3. sign:  multiply by sign[j]
 *                4. map:   the named nonlinear map of dim j (e.g. aloha_gripper_from_angular)
 *                5. clip:  to [clip_lo, clip_hi] where set
 *                6. binarize: value > threshold ? 1 : 0 where set
 * Limits (position range, maximum change per control tick) are parsed and exposed for the
 * node's safety clamp; actions_out does not apply them.
 *
 * The robot file (INI; `;` or `#` comments; lists are comma-separated; dims count from 0;
 * lines of at most 190 bytes: a longer value continues on indented lines, joined with a
 * space, so end the line before with a comma).
 * Every key below is required unless marked optional; unknown sections or keys, a key
 * given twice, a list of the wrong length, a dim out of range, a non-finite number or a
 * map constant missing/unknown for its type is an error `file:line: section.key: reason`.
 *
 *   [robot]   name = aloha           ; optional, shown by pi0rt-calib
 *             control_hz = 50        ; optional, the rate the robot expects
 *             prompt = fold the towel; optional default prompt
 *   [state]   dim = 14               ; model state dims state_in writes (1..64)
 *             index = 0, 1, ..., 13  ; robot joint index of model dim i (<= dim items;
 *                                    ; dims after the last item are zero)
 *             sign = 1, -1, ...      ; 1 or -1 per index item
 *             map.6 = NAME           ; optional: model dim 6 goes through [map.NAME]
 *   [actions] out_dims = 14          ; robot action dims (the first out_dims model dims)
 *             delta = 6, -1, 6, -1   ; openpi make_bool_mask: N > 0 adds the state to N dims,
 *                                    ; N < 0 skips -N; covers exactly out_dims; or `none`
 *             sign = 1, -1, ...      ; 1 or -1 per out dim
 *             map.6 = NAME           ; optional per out dim
 *             clip = -1, 1           ; optional, every out dim (clip.J = lo, hi: dim J only)
 *             binarize.7 = 0.5       ; optional: dim 7 becomes value > 0.5 ? 1 : 0
 *   [limits]  lo = ..., hi = ..., max_step = ...   ; optional, out_dims items each, `-` =
 *                                    ; not set; robot units, max_step per control tick
 *   [cameras] base_0_rgb = cam_high  ; a topic or `none` (masked), for each of the three
 *             left_wrist_0_rgb = ... ; slots base_0_rgb, left_wrist_0_rgb, right_wrist_0_rgb
 *             base_0_rgb.rotate180 = yes   ; optional (default no)
 *   [map.NAME] type = T + the constants of T:
 *     linear:                     y = scale*x + offset                      (scale != 0)
 *     aloha_gripper_to_angular:   v = x*(linear_open - linear_closed) + linear_closed;
 *                                 a = asin(clip((horn_radius² + v² - arm_length²)
 *                                               / (2*horn_radius*v), -1, 1));
 *                                 y = (a - angle_lo) / (angle_hi - angle_lo)
 *     aloha_gripper_from_angular: y = (x + offset - joint_closed) / (joint_open - joint_closed)
 * The robot's joint order is given by index (the pi0.JointState topic carries no names).
 * Ready files: calib/robots/{aloha,droid,libero,sim}.ini.
 *
 * Thread safety: a loaded pi0_calib is immutable; every function below except load, parse
 * and destroy is a pure function of its arguments, allocates nothing and may be called
 * from any thread concurrently. */
#ifndef PI0_CALIB_H
#define PI0_CALIB_H

#include <stddef.h>
#include <stdint.h>

#include "common/pi0_status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define PI0_CALIB_DIM_MAX   64 /* most state / action dims (as the shm messages) */
#define PI0_CALIB_CAMERAS   3  /* model image slots */
#define PI0_CALIB_TOPIC_MAX 63 /* as PI0_TOPIC_NAME_MAX */

typedef struct pi0_calib pi0_calib;

/* Model image slots, in the checkpoint's order. */
enum pi0_calib_slot {
    PI0_CALIB_BASE = 0,        /* base_0_rgb */
    PI0_CALIB_LEFT_WRIST = 1,  /* left_wrist_0_rgb */
    PI0_CALIB_RIGHT_WRIST = 2, /* right_wrist_0_rgb */
};

/* One model image slot: fed from `topic`, or masked when topic[0] == 0. */
typedef struct pi0_calib_camera {
    char topic[PI0_CALIB_TOPIC_MAX + 1];
    int rotate180; /* 1: rotate the frame by 180° before the model sees it */
} pi0_calib_camera;

/* Per output dim safety limits, in robot units (NAN = not set). */
typedef struct pi0_calib_limit {
    double lo, hi;   /* position range */
    double max_step; /* largest change per control tick (> 0) */
} pi0_calib_limit;

/* Reads and validates a robot file. On failure *out is untouched, nothing leaks and
 * pi0_last_error_for(status) says `file:line: key: reason`. */
PI0_API int pi0_calib_load(const char *path, pi0_calib **out);
/* The same from a file already in memory (text[len], need not be NUL-terminated); `name`
 * is what error messages call the file. */
PI0_API int pi0_calib_parse(const char *name, const char *text, size_t len, pi0_calib **out);
/* NULL ok. */
PI0_API void pi0_calib_destroy(pi0_calib *c);

/* ---- queries (never fail) ---- */
PI0_API int pi0_calib_state_dim(const pi0_calib *c);  /* model state dims state_in writes */
PI0_API int pi0_calib_raw_dim(const pi0_calib *c);    /* joints the robot must publish
                                                         (largest index + 1) */
PI0_API int pi0_calib_action_dim(const pi0_calib *c); /* model action dims actions_out
                                                         reads (>= out_dims) */
PI0_API int pi0_calib_out_dim(const pi0_calib *c);    /* robot action dims it writes */
/* Slot 0..PI0_CALIB_CAMERAS-1; NULL for an out-of-range slot. */
PI0_API const pi0_calib_camera *pi0_calib_camera_get(const pi0_calib *c, int slot);
/* [out_dim] limits. */
PI0_API const pi0_calib_limit *pi0_calib_limits(const pi0_calib *c);
PI0_API double pi0_calib_control_hz(const pi0_calib *c);  /* 0 = not set */
PI0_API const char *pi0_calib_prompt(const pi0_calib *c); /* NULL = not set */
PI0_API const char *pi0_calib_name(const pi0_calib *c);   /* [robot] name, "" = not set */
/* "base_0_rgb", "left_wrist_0_rgb", "right_wrist_0_rgb"; NULL for an out-of-range slot. */
PI0_API const char *pi0_calib_slot_name(int slot);
/* The resolved transform, one line per dim, as snprintf into buf[cap] (always
 * NUL-terminated when cap > 0; buf may be NULL when cap is 0); returns the length it
 * needed, without the NUL. */
PI0_API size_t pi0_calib_describe(const pi0_calib *c, char *buf, size_t cap);

/* ---- transforms (pure, no allocation, any thread) ---- */

/* raw: the robot's joint positions [n_raw] (n_raw >= raw_dim) → model-space state
 * [state_dim] (double precision: the joint topic carries doubles). PI0_EINVAL when n_raw
 * is too small or a value is not finite (the detail names the joint). */
PI0_API int pi0_calib_state_in(const pi0_calib *c, const double *raw, int n_raw, double *state);

/* chunk: model-space (unnormalized) actions [horizon, dim] with dim >= action_dim;
 * state: the observation's model-space state [state_dim] (from state_in) → robot actions
 * [horizon, out_dim] in out. out may be chunk itself (in place, any dim); any other overlap
 * is PI0_EINVAL, as are horizon < 1 and dim < action_dim. Non-finite values pass through
 * (clip and binarize keep a NaN; the caller checks). */
PI0_API int pi0_calib_actions_out(const pi0_calib *c, const float *chunk, int horizon, int dim,
                                  const double *state, float *out);

/* Safety clamp of one robot action [out_dim] in place: into [lo, hi], then to within
 * max_step of prev (prev NULL: no step limit). Returns how many values were changed. A NaN
 * stays NaN. */
PI0_API int pi0_calib_clamp(const pi0_calib *c, const float *prev, float *action);

#ifdef __cplusplus
}
#endif
#endif /* PI0_CALIB_H */
