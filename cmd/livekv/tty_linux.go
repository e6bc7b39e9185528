package main

import "syscall"

// ioctlGetTermios is the ioctl that gets a terminal's attributes.
const ioctlGetTermios = syscall.TCGETS
