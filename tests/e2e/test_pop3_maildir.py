"""qmail-pop3d and the Maildir: new -> cur at QUIT, deletions only at QUIT,
stable UIDLs, maildirsize, deliveries during a session, one session per
mailbox (IN-USE), tmp/ cleaning."""
import os
import poplib
import time
import unittest

import test_pop3_protocol as p3
from harness import wait_until

M1 = p3.M1


class Maildir(p3.Pop3Case):
    def login(self, port):
        p = poplib.POP3("127.0.0.1", port, timeout=10)
        p.user("joe")
        p.pass_("secret")
        return p

    def test_uidl_stable_across_new_to_cur_and_flags(self):
        self.put("1.a.h,S=33", M1)
        self.put("2.b.h", M1)
        port = self.pop3().port
        p = self.login(port)
        first = p.uidl()[1]
        p.quit()
        self.assertEqual(self.files("cur"), ["1.a.h,S=33:2,", "2.b.h:2,"])
        # A mail reader sets flags on one of them.
        os.rename(os.path.join(self.md, "cur", "2.b.h:2,"), os.path.join(self.md, "cur", "2.b.h:2,FS"))
        p = self.login(port)
        self.assertEqual(p.uidl()[1], first)
        self.assertEqual(first, [b"1 1.a.h,S=33", b"2 2.b.h"])
        p.quit()

    def test_deletions_only_at_quit_and_maildirsize(self):
        with open(os.path.join(self.md, "maildirsize"), "w") as f:
            f.write("1000000S,100C\n66 2\n")
        self.put("1.a.h,S=33", M1)
        self.put("2.b.h", M1)
        port = self.pop3().port
        p = self.login(port)
        p.dele(1)
        p.dele(2)
        p.close()  # dropped without QUIT
        p = self.login(port)  # the new session waits for nothing: the old one changed nothing
        self.assertEqual(p.stat(), (2, 66))
        p.dele(1)
        p.quit()
        self.assertEqual(self.files("new"), [])
        self.assertEqual(self.files("cur"), ["2.b.h:2,"])
        with open(os.path.join(self.md, "maildirsize")) as f:
            self.assertEqual(f.read(), "1000000S,100C\n66 2\n-33 -1\n")

    def test_absurd_sizes_in_names_are_no_trouble(self):
        # ,S= in a name is whatever the file's writer chose: sizes that add
        # up past 2^64 neither crash the session nor the quota update.
        with open(os.path.join(self.md, "maildirsize"), "w") as f:
            f.write("1000000S,100C\n66 2\n")
        self.put("1.a.h,S=18446744073709551615", M1)
        self.put("2.b.h,S=18446744073709551615", M1)
        port = self.pop3().port
        p = self.login(port)
        p.dele(1)
        p.dele(2)
        p.quit()
        self.assertEqual(self.files("new") + self.files("cur"), [])
        with open(os.path.join(self.md, "maildirsize")) as f:
            self.assertTrue(f.read().startswith("1000000S,100C\n66 2\n-"))

    def test_delivery_during_a_session_is_safe(self):
        self.put("1.a.h", M1)
        p = self.login(self.pop3().port)
        self.assertEqual(p.stat()[0], 1)
        # A delivery the Maildir way: tmp, then link into new/.
        tmp = os.path.join(self.md, "tmp", "9.new.h")
        with open(tmp, "wb") as f:
            f.write(M1)
        os.link(tmp, os.path.join(self.md, "new", "9.new.h"))
        os.unlink(tmp)
        self.assertEqual(p.stat()[0], 1)
        p.dele(1)
        p.quit()
        # The new message was neither listed, moved nor deleted.
        self.assertEqual(self.files("new"), ["9.new.h"])
        self.assertEqual(self.files("cur"), [])

    def test_a_second_session_gets_in_use_and_nothing_twice(self):
        with open(os.path.join(self.md, "maildirsize"), "w") as f:
            f.write("1000000S,100C\n99 3\n")
        for i in (1, 2, 3):
            self.put(f"{i}.m.h", M1)
        srv = self.pop3()
        port = srv.port
        a = self.login(port)
        self.assertEqual(a.stat()[0], 3)
        # While a has the mailbox, b is told so (RFC 2449 IN-USE) and sees nothing.
        with self.assertRaises(poplib.error_proto) as cm:
            self.login(port)
        self.assertEqual(cm.exception.args[0],
                         b"-ERR [IN-USE] this mailbox is in use by another session; try again later")
        # ... and the log says so.
        wait_until(lambda: "refused: mailbox in use by another session" in srv.stderr(), 10,
                   what="the IN-USE log line")
        a.dele(1)
        a.dele(2)
        self.assertEqual(a.quit(), b"+OK ")
        # Once a has ended, b gets in and finds only what a left.
        b = self.login(port)
        self.assertEqual(b.stat(), (1, 33))
        self.assertEqual(b.retr(1)[1][0], b"Subject: one")
        b.dele(1)
        self.assertEqual(b.quit(), b"+OK ")
        self.assertEqual(self.files("new") + self.files("cur"), [])
        with open(os.path.join(self.md, "maildirsize")) as f:
            self.assertEqual(f.read(), "1000000S,100C\n99 3\n-66 -2\n-33 -1\n")
        # A Maildir every local user may read is not locked (any of them could
        # hold the lock): two sessions then work side by side.
        os.chmod(self.md, 0o755)
        c1, c2 = self.login(port), self.login(port)
        self.assertEqual(c1.quit(), b"+OK ")
        self.assertEqual(c2.quit(), b"+OK ")
        os.chmod(self.md, 0o700)
        # A client that vanished without QUIT leaves no lock behind.
        c = self.login(port)
        c.close()  # no QUIT: the connection just ends
        def free():
            try:
                return self.login(port).quit() == b"+OK "
            except poplib.error_proto:
                return False
        p3.wait_until(free, what="mailbox free again")

    def test_messages_of_the_current_second_wait_and_old_tmp_files_go(self):
        now = int(time.time())
        self.put("1.old.h", M1, mtime=now - 100)
        self.put("2.now.h", M1, mtime=now + 5)
        old = os.path.join(self.md, "tmp", "stale")
        fresh = os.path.join(self.md, "tmp", "fresh")
        for f, t in ((old, now - 37 * 3600), (fresh, now - 3600)):
            with open(f, "w") as fh:
                fh.write("x")
            os.utime(f, (t, t))
        p = self.login(self.pop3(VQMAIL_NOW=str(now)).port)
        self.assertEqual(p.stat(), (1, 33))
        p.quit()
        self.assertEqual(self.files("new"), ["2.now.h"])
        self.assertEqual(self.files("tmp"), ["fresh"])

    def test_no_maildir(self):
        os.rename(self.md, self.md + ".gone")
        c = p3.Raw(self.pop3().port)
        c.line()
        c.cmd("USER joe")
        self.assertEqual(c.cmd("PASS secret"), b"-ERR this user has no $HOME/Maildir\r\n")
        self.assertTrue(c.closed())
        self.assertEqual(c.buf, b"")


if __name__ == "__main__":
    unittest.main()
