# ctest helper: runs CMD (program and arguments separated by '|') and requires exit status RC (default 2, a usage error) and
# stderr matching EXPECT.
#   cmake -DCMD=<prog|arg|arg...> -DEXPECT=<regex> [-DRC=1] -P check_usage.cmake
if(NOT DEFINED RC)
  set(RC 2)
endif()
string(REPLACE "|" ";" CMD "${CMD}")
execute_process(COMMAND ${CMD} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL RC)
  message(FATAL_ERROR "expected exit status ${RC}, got '${rc}'\nstdout: ${out}\nstderr: ${err}")
endif()
if(NOT err MATCHES "${EXPECT}")
  message(FATAL_ERROR "stderr does not match '${EXPECT}':\n${err}")
endif()
