# The end-to-end ctest (redi_extract_e2e): a folder of PNG and (with libjpeg) JPEG images, named
# <class>/img<k>.png|.JPEG -> redi_extract (tiny random
# 4-block VAE, the committed tiny DINOv2 of tests/data/dinov2/, PCA fitted here) -> shards ->
# resume checks -> a few training steps of redi_train_imagenet on them -> redi_sample (sample,
# decode with the same VAE) -> samples.npz of the ADM format.
#   cmake -DDATA_TOOL=... -DEXTRACT=... -DTRAIN=... -DSAMPLE=... -DDINOV2=... -DWORK=... -P e2e_test.cmake
function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "failed (${rc}): ${ARGN}\nstdout:\n${out}\nstderr:\n${err}")
  endif()
  set(last_out "${out}" PARENT_SCOPE)
endfunction()

file(REMOVE_RECURSE ${WORK})
file(MAKE_DIRECTORY ${WORK})
run(${DATA_TOOL} ${WORK})
# with libjpeg the folder mixes PNG and JPEG (ImageNet's .JPEG suffix)
file(GLOB jpegs ${WORK}/images/*/*.JPEG)
list(LENGTH jpegs njpeg)
if(last_out MATCHES "3 of them JPEG" AND NOT njpeg EQUAL 3)
  message(FATAL_ERROR "the data tool reported 3 JPEGs, found ${njpeg}")
endif()
set(args --images ${WORK}/images --out ${WORK}/shards --vae ${WORK}/vae.safetensors --vae-channels 8,8,8,8
         --vae-layers 1 --vae-groups 4 --dinov2 ${DINOV2} --pca-images 4 --r 4 --shard-size 2 --batch 2
         --flips --threads 1)
run(${EXTRACT} ${args})
message(STATUS "extract:\n${last_out}")
foreach(k 0 1 2)
  if(NOT EXISTS ${WORK}/shards/shard_0000${k}.safetensors)
    message(FATAL_ERROR "shard ${k} missing")
  endif()
endforeach()
if(NOT EXISTS ${WORK}/shards/pca/pca.safetensors OR NOT EXISTS ${WORK}/shards/classes.txt)
  message(FATAL_ERROR "pca/pca.safetensors or classes.txt missing")
endif()
if(NOT last_out MATCHES "img/s  ETA")
  message(FATAL_ERROR "no progress line")
endif()

# the rows of a shard, recomputed independently (order, labels, crop, flips, latent scale, PCA layout)
run(${DATA_TOOL} verify ${WORK} ${DINOV2} ${WORK}/shards/shard_00001.safetensors)
message(STATUS "verify:\n${last_out}")
if(njpeg GREATER 0 AND NOT last_out MATCHES "img1[.]JPEG")
  message(FATAL_ERROR "the verified shard holds no JPEG-decoded row")
endif()

# resume: a complete folder is left alone; a missing shard is rebuilt bit-identically
file(SHA256 ${WORK}/shards/shard_00000.safetensors h0)
file(SHA256 ${WORK}/shards/shard_00001.safetensors h1)
run(${EXTRACT} ${args})
if(NOT last_out MATCHES "nothing to do")
  message(FATAL_ERROR "rerun did not skip the complete shards:\n${last_out}")
endif()
file(REMOVE ${WORK}/shards/shard_00001.safetensors)
run(${EXTRACT} ${args})
if(NOT last_out MATCHES "resuming" OR NOT last_out MATCHES "shard_00001" OR last_out MATCHES "shard_00000")
  message(FATAL_ERROR "resume did not rebuild exactly the missing shard:\n${last_out}")
endif()
file(SHA256 ${WORK}/shards/shard_00000.safetensors g0)
file(SHA256 ${WORK}/shards/shard_00001.safetensors g1)
if(NOT h0 STREQUAL g0 OR NOT h1 STREQUAL g1)
  message(FATAL_ERROR "resumed shards differ from the first run")
endif()
# other options in the same folder are refused
set(changed ${args})
list(TRANSFORM changed REPLACE "^--flips$" "--seed=1")
list(REMOVE_ITEM changed "--seed=1")
execute_process(COMMAND ${EXTRACT} ${changed} RESULT_VARIABLE rc ERROR_VARIABLE err OUTPUT_QUIET)
if(rc EQUAL 0 OR NOT err MATCHES "started with other options")
  message(FATAL_ERROR "changed options were not refused (${rc}): ${err}")
endif()

# a few training steps on the shards, as redi_train_imagenet reads them
run(${TRAIN} --data ${WORK}/shards --r 4 --size S/2 --depth 1 --width 32 --heads 2 --batch 4 --steps 3
    --log-every 1 --out ${WORK}/run --threads 1)
message(STATUS "train:\n${last_out}")
string(REGEX MATCHALL "shard_0000[0-2][.]safetensors: 4 samples" read "${last_out}")
list(LENGTH read nread)
if(NOT nread EQUAL 3 OR NOT last_out MATCHES "step 3/3")
  message(FATAL_ERROR "training did not read the 3 shards of 2 images x 2 orientations, or did not train")
endif()

# sample the trained model and decode with the same tiny VAE: the ADM evaluator's npz
run(${SAMPLE} --ckpt ${WORK}/run/checkpoint.safetensors --vae ${WORK}/vae.safetensors --vae-channels 8,8,8,8
    --vae-layers 1 --vae-groups 4 --num-samples 3 --sampler euler --sample-steps 2 --guidance cfg+rg
    --batch 3 --chunk 2 --grid 3 --out ${WORK}/sample --threads 1)
message(STATUS "sample:\n${last_out}")
if(NOT EXISTS ${WORK}/sample/samples.npz OR NOT EXISTS ${WORK}/sample/samples.png)
  message(FATAL_ERROR "redi_sample wrote no samples.npz / samples.png")
endif()
# arr_0: uint8 [3, 256, 256, 3] (stored: the .npy header names dtype and shape)
file(READ ${WORK}/sample/samples.npz npz LIMIT 4096 HEX)
string(HEX "'descr': '|u1', 'fortran_order': False, 'shape': (3, 256, 256, 3)" want)
string(TOLOWER "${want}" want)
string(FIND "${npz}" "${want}" at)
if(at EQUAL -1)
  message(FATAL_ERROR "samples.npz does not hold arr_0 as uint8 [3, 256, 256, 3]")
endif()
