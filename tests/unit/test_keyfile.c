/* SPDX-License-Identifier: MIT */
#include <fcntl.h>
#include <sys/stat.h>

#include "harness.h"
#include "keyfile.h"
#include "store.h"

static void write_file(const char *path, size_t len, mode_t mode)
{
	uint8_t buf[64] = { 0 };
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);

	REQUIRE(fd >= 0);
	REQUIRE(len <= sizeof(buf));
	REQUIRE(write(fd, buf, len) == (ssize_t)len);
	REQUIRE(fchmod(fd, mode) == 0);
	close(fd);
}

int main(void)
{
	char *dir = harness_tmpdir();
	char *kp = harness_path(dir, "key");
	char *other = harness_path(dir, "other");
	char *link = harness_path(dir, "link");
	char *missing = harness_path(dir, "missing");
	uint8_t *k1 = NULL, *k2 = NULL;
	struct stat st;

	CHECK_EQ(key_create(kp), 0);
	CHECK_EQ(key_create(kp), -EEXIST);
	REQUIRE(stat(kp, &st) == 0);
	CHECK_EQ(st.st_mode & 07777, 0400);
	CHECK_EQ(st.st_size, STORE_KEY_BYTES);

	CHECK_EQ(key_load(kp, &k1), 0);
	REQUIRE(k1 != NULL);
	CHECK_EQ(key_load(kp, &k2), 0);
	REQUIRE(k2 != NULL);
	CHECK(memcmp(k1, k2, STORE_KEY_BYTES) == 0);
	k2 = key_free(k2);

	/* a second key is a different key */
	CHECK_EQ(key_create(other), 0);
	CHECK_EQ(key_load(other, &k2), 0);
	REQUIRE(k2 != NULL);
	CHECK(memcmp(k1, k2, STORE_KEY_BYTES) != 0);
	k2 = key_free(k2);
	k1 = key_free(k1);
	key_free(NULL);

	/* group/other access refused */
	uint8_t *untouched = (uint8_t *)"sentinel";
	uint8_t *kx = untouched;
	REQUIRE(chmod(kp, 0644) == 0);
	CHECK_EQ(key_load(kp, &kx), -EPERM);
	CHECK(kx == untouched);
	REQUIRE(chmod(kp, 0640) == 0);
	CHECK_EQ(key_load(kp, &kx), -EPERM);
	REQUIRE(chmod(kp, 0604) == 0);
	CHECK_EQ(key_load(kp, &kx), -EPERM);
	REQUIRE(chmod(kp, 0600) == 0);
	CHECK_EQ(key_load(kp, &kx), 0);
	key_free(kx);
	kx = untouched;

	/* wrong lengths */
	write_file(other, STORE_KEY_BYTES - 1, 0600);
	CHECK_EQ(key_load(other, &kx), -EINVAL);
	write_file(other, STORE_KEY_BYTES + 1, 0600);
	CHECK_EQ(key_load(other, &kx), -EINVAL);
	write_file(other, 0, 0600);
	CHECK_EQ(key_load(other, &kx), -EINVAL);

	/* missing; symlink not followed; directory */
	CHECK_EQ(key_load(missing, &kx), -ENOENT);
	REQUIRE(symlink(kp, link) == 0);
	CHECK(key_load(link, &kx) < 0);
	CHECK_EQ(key_load(dir, &kx) < 0, 1);
	CHECK(kx == untouched);

	/* key_create_at hands back the bytes it wrote (never re-read by name) */
	{
		int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		uint8_t *made = NULL, *read_back = NULL;
		REQUIRE(dfd >= 0);
		CHECK_EQ(key_create_at(dfd, "made", &made), 0);
		REQUIRE(made != NULL);
		char *mp = harness_path(dir, "made");
		CHECK_EQ(key_load(mp, &read_back), 0);
		REQUIRE(read_back != NULL);
		CHECK(memcmp(made, read_back, STORE_KEY_BYTES) == 0);
		key_free(read_back);
		key_free(made);
		made = untouched;
		/* an existing name or a symlink there is never adopted */
		CHECK_EQ(key_create_at(dfd, "made", &made), -EEXIST);
		CHECK_EQ(key_create_at(dfd, "link", &made), -EEXIST);
		CHECK(made == untouched);
		/* another uid's key is refused, with the reason */
		if (geteuid() == 0) {
			char why[512];
			REQUIRE(chown(mp, 65534, 65534) == 0);
			CHECK_EQ(key_load_why(mp, &kx, why, sizeof(why)), -EACCES);
			CHECK(strstr(why, "is owned by uid 65534, not by this daemon (uid 0)") !=
			      NULL);
			CHECK(kx == untouched);
			REQUIRE(chown(mp, 0, 0) == 0);
			REQUIRE(chmod(mp, 0440) == 0);
			CHECK_EQ(key_load_why(mp, &kx, why, sizeof(why)), -EPERM);
			CHECK(strstr(why, "is open to group or others") != NULL);
		}
		free(mp);
		close(dfd);
	}

	harness_rmrf(dir);
	free(kp);
	free(other);
	free(link);
	free(missing);
	free(dir);
	return harness_result("test_keyfile");
}
