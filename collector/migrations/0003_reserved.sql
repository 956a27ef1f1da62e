-- 0003: reserved for the acknowledgement work (issue 10), merged separately;
-- this placeholder only keeps the numbering while it is not there.
SELECT 1;
