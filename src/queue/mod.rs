//! The qmail queue: qmail-queue, todo processing, scheduling and bounces.
