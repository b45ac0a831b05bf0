/*
 * termtext.h — text from the target on a terminal. Function, file, thread and variable names
 * come from the traced process's memory, so a process can name a thread "\e]0;...\a" or a
 * function "\e[2J": printed as they are, those bytes drive the reader's terminal. The text verbs
 * (dump, info, top --once) show every control character as a visible escape instead: C0 bytes
 * other than newline and tab, DEL, and the C1 controls U+0080-U+009F (UTF-8 0xC2 0x80-0x9F).
 */
#ifndef PT_TERMTEXT_H
#define PT_TERMTEXT_H

/* From now on, stdout escapes control characters but newline and tab (see above). For verbs
 * whose whole output is text for a person; never with a binary output on stdout. */
void term_filter_stdout(void);

#endif
