-- 0002: the session registry. PAM (pam_exec running `collector session`
-- as root in the sshd and login stacks) registers each login session when
-- it opens, so the collector can vouch for a writer's loginuid and audit
-- session: a process whose loginuid was unset can set it to anything and
-- gets a fresh session id that no PAM stack registered.
-- Audit session ids are unique per boot only: the key includes the boot id.
CREATE TABLE sessions (
    boot_id   TEXT NOT NULL,              -- /proc/sys/kernel/random/boot_id
    session   INTEGER NOT NULL,           -- audit session id (kernel, of the registering PAM process)
    loginuid  INTEGER NOT NULL,           -- audit login uid (kernel), = uid of PAM_USER
    user      TEXT NOT NULL,              -- PAM_USER
    service   TEXT NOT NULL,              -- PAM_SERVICE (sshd, login)
    tty       TEXT,                       -- PAM_TTY
    rhost     TEXT,                       -- PAM_RHOST: the ssh client's address
    opened_us INTEGER NOT NULL,
    closed_us INTEGER,
    PRIMARY KEY (boot_id, session)
);
