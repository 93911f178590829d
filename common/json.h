// Checks on values read from JSON files.
#ifndef PAW_COMMON_JSON_H
#define PAW_COMMON_JSON_H

#include <cjson/cJSON.h>
#include <math.h>

// Whether v is a number holding an integer in [lo, hi]: tested before a conversion to an integer
// type, which is undefined for values out of range (NaN fails every comparison).
static inline int paw_json_is_int_in(const cJSON *v, double lo, double hi) {
    return cJSON_IsNumber(v) && v->valuedouble >= lo && v->valuedouble <= hi && v->valuedouble == floor(v->valuedouble);
}

#endif
