/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 the vfu authors. */

/* What the public headers need from the compiler, in one place. */
#ifndef LIB_VFIO_USER_COMPILER_H
#define LIB_VFIO_USER_COMPILER_H

/* Layout checks that work from both C and C++ (C++11 on) translation units. */
#ifndef VFU_STATIC_ASSERT
#ifdef __cplusplus
#define VFU_STATIC_ASSERT(cond, msg) static_assert(cond, msg)
#else
#define VFU_STATIC_ASSERT(cond, msg) _Static_assert(cond, msg)
#endif
#endif

#endif /* LIB_VFIO_USER_COMPILER_H */
