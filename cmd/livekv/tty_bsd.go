//go:build darwin || freebsd || netbsd || openbsd || dragonfly

package main

import "syscall"

// ioctlGetTermios is the ioctl that gets a terminal's attributes.
const ioctlGetTermios = syscall.TIOCGETA
