# Layers run one way: a library may link libraries of lower layers, and libraries of its own
# component at its own layer or below, nothing else. Checked at configure time, so a link that
# runs uphill fails `cmake` with a message naming both ends.
#
#   shoal_layer(<layer> <component> <library>...)   declares libraries (a layer is 0, 1, 2, ...)
#   shoal_private_to(<library> <target>...)         only these targets (and the library's own
#                                                   component) may link <library>
#   shoal_check_layers(<dir>...)                    checks every target defined under the
#                                                   given source folders; every static or
#                                                   shared library there must be declared
#
# Only direct links are checked: each library's own links obey the rule, so the closure does.

function(shoal_layer layer component)
  foreach(library ${ARGN})
    set_property(GLOBAL PROPERTY SHOAL_LAYER_${library} ${layer})
    set_property(GLOBAL PROPERTY SHOAL_COMPONENT_${library} ${component})
    set_property(GLOBAL APPEND PROPERTY SHOAL_LAYERED_LIBRARIES ${library})
  endforeach()
endfunction()

function(shoal_private_to library)
  set_property(GLOBAL PROPERTY SHOAL_PRIVATE_TO_${library} ${ARGN})
endfunction()

# Every target defined in `dir` and the folders below it, into `out`.
function(_shoal_targets_below dir out)
  get_property(targets DIRECTORY ${dir} PROPERTY BUILDSYSTEM_TARGETS)
  get_property(subdirs DIRECTORY ${dir} PROPERTY SUBDIRECTORIES)
  foreach(sub ${subdirs})
    _shoal_targets_below(${sub} more)
    list(APPEND targets ${more})
  endforeach()
  set(${out} ${targets} PARENT_SCOPE)
endfunction()

# The targets `target` links directly (PUBLIC, PRIVATE and INTERFACE), generator expressions
# such as $<LINK_ONLY:x> unwrapped.
function(_shoal_direct_links target out)
  get_target_property(type ${target} TYPE)
  set(links)
  if(NOT type STREQUAL "INTERFACE_LIBRARY")
    get_target_property(private ${target} LINK_LIBRARIES)
    if(private)
      list(APPEND links ${private})
    endif()
  endif()
  get_target_property(interface ${target} INTERFACE_LINK_LIBRARIES)
  if(interface)
    list(APPEND links ${interface})
  endif()
  set(names)
  foreach(link ${links})
    string(REGEX REPLACE "^\\$<LINK_ONLY:(.*)>$" "\\1" link "${link}")
    if(TARGET ${link})
      list(APPEND names ${link})
    endif()
  endforeach()
  list(REMOVE_DUPLICATES names)
  set(${out} ${names} PARENT_SCOPE)
endfunction()

function(shoal_check_layers)
  set(errors)
  set(all_targets)
  foreach(dir ${ARGN})
    _shoal_targets_below(${dir} below)
    list(APPEND all_targets ${below})
  endforeach()
  get_property(declared GLOBAL PROPERTY SHOAL_LAYERED_LIBRARIES)
  foreach(library ${declared})
    if(NOT TARGET ${library})
      list(APPEND errors "shoal_layer names ${library}, which is no target")
    endif()
  endforeach()
  foreach(target ${all_targets})
    get_target_property(type ${target} TYPE)
    get_property(layer GLOBAL PROPERTY SHOAL_LAYER_${target})
    get_property(component GLOBAL PROPERTY SHOAL_COMPONENT_${target})
    if(type MATCHES "^(STATIC|SHARED|OBJECT)_LIBRARY$" AND "${layer}" STREQUAL "")
      list(APPEND errors "library ${target} has no layer: declare it with shoal_layer()")
    endif()
    _shoal_direct_links(${target} links)
    foreach(dep ${links})
      get_property(dep_layer GLOBAL PROPERTY SHOAL_LAYER_${dep})
      get_property(dep_component GLOBAL PROPERTY SHOAL_COMPONENT_${dep})
      get_property(private_to GLOBAL PROPERTY SHOAL_PRIVATE_TO_${dep})
      if(NOT "${dep_layer}" STREQUAL "" AND NOT "${layer}" STREQUAL "")
        if("${dep_component}" STREQUAL "${component}")
          if(dep_layer GREATER "${layer}")
            list(APPEND errors "${target} (layer ${layer}) links ${dep} (layer ${dep_layer}) of its own component above it")
          endif()
        elseif(NOT dep_layer LESS "${layer}")
          list(APPEND errors
               "${target} (${component}, layer ${layer}) links ${dep} (${dep_component}, layer ${dep_layer}): a library may link only lower layers")
        endif()
      endif()
      if(private_to AND NOT target IN_LIST private_to
         AND NOT (NOT "${component}" STREQUAL "" AND "${component}" STREQUAL "${dep_component}"))
        list(JOIN private_to ", " allowed)
        list(APPEND errors "${target} links ${dep}, which only ${allowed} may link")
      endif()
    endforeach()
  endforeach()
  if(errors)
    list(JOIN errors "\n  " text)
    message(FATAL_ERROR "Shoal's layers run one way (cmake/layers.cmake); these links break that:\n  ${text}")
  endif()
endfunction()
