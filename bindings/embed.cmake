# SPDX-License-Identifier: BSD-3-Clause
# Copyright (c) 2026 the vfu authors.
# Turn Lua helper files into C string literals:
#   cmake -DOUT=header -DINPUTS=name=file,name=file -P embed.cmake
set(text "/* Generated from the lua directory by bindings/embed.cmake. */\n")
string(REPLACE "," ";" inputs "${INPUTS}")
foreach(pair ${inputs})
  string(REPLACE "=" ";" kv "${pair}")
  list(GET kv 0 name)
  list(GET kv 1 file)
  file(READ "${file}" hex HEX)
  string(REGEX REPLACE "([0-9a-f][0-9a-f])" "\\\\x\\1" escaped "${hex}")
  string(REGEX REPLACE "((\\\\x[0-9a-f][0-9a-f]){32})" "\\1\"\n    \"" escaped "${escaped}")
  string(APPEND text "static const char lvfu_helper_${name}[] =\n    \"${escaped}\";\n")
endforeach()
file(WRITE "${OUT}.tmp" "${text}")
file(COPY_FILE "${OUT}.tmp" "${OUT}" ONLY_IF_DIFFERENT)
