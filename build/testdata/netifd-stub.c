/*
 * netifd-stub: the part of OpenWrt's netifd that procd's interface
 * triggers listen to, for build/procd-test.sh. It registers the ubus object
 * "network.interface" (the network init script's `procd_set_param watch
 * network.interface` makes procd subscribe to it) and, when asked through
 * its one method, sends the notification netifd sends when an interface
 * comes up or its addresses change:
 *
 *   ubus notify from network.interface: "interface.update"
 *       {"interface": NAME, "up": true}
 *
 *   ubus call network.interface test_event '{"interface":"wan","count":10,"every_ms":100}'
 *
 * count notifications every_ms apart (a flapping uplink); the call returns
 * at once. Built by build/procd-test.sh against the libubus that
 * build-procd.sh builds.
 */
#include <stdio.h>
#include <libubus.h>
#include <libubox/blobmsg.h>
#include <libubox/uloop.h>

static struct ubus_context *ctx;
static struct blob_buf b;
static struct uloop_timeout tick;
static char iface[64];
static unsigned int left, every_ms;

enum { EV_IFACE, EV_COUNT, EV_EVERY, __EV_MAX };
static const struct blobmsg_policy ev_policy[__EV_MAX] = {
	[EV_IFACE] = { .name = "interface", .type = BLOBMSG_TYPE_STRING },
	[EV_COUNT] = { .name = "count", .type = BLOBMSG_TYPE_INT32 },
	[EV_EVERY] = { .name = "every_ms", .type = BLOBMSG_TYPE_INT32 },
};

static int handle_event(struct ubus_context *c, struct ubus_object *obj, struct ubus_request_data *req,
			const char *method, struct blob_attr *msg);

static const struct ubus_method methods[] = {
	UBUS_METHOD("test_event", handle_event, ev_policy),
};
static struct ubus_object_type obj_type = UBUS_OBJECT_TYPE("netifd_iface_stub", methods);
static struct ubus_object obj = {
	.name = "network.interface",
	.type = &obj_type,
	.methods = methods,
	.n_methods = ARRAY_SIZE(methods),
};

static void send_update(struct uloop_timeout *t)
{
	blob_buf_init(&b, 0);
	blobmsg_add_string(&b, "interface", iface);
	blobmsg_add_u8(&b, "up", 1);
	ubus_notify(ctx, &obj, "interface.update", b.head, -1);
	if (--left > 0)
		uloop_timeout_set(t, every_ms);
}

static int handle_event(struct ubus_context *c, struct ubus_object *o, struct ubus_request_data *req,
			const char *method, struct blob_attr *msg)
{
	struct blob_attr *tb[__EV_MAX];

	blobmsg_parse(ev_policy, __EV_MAX, tb, blob_data(msg), blob_len(msg));
	if (!tb[EV_IFACE])
		return UBUS_STATUS_INVALID_ARGUMENT;
	snprintf(iface, sizeof(iface), "%s", blobmsg_get_string(tb[EV_IFACE]));
	left = tb[EV_COUNT] ? blobmsg_get_u32(tb[EV_COUNT]) : 1;
	every_ms = tb[EV_EVERY] ? blobmsg_get_u32(tb[EV_EVERY]) : 0;
	if (left == 0 || left > 1000)
		return UBUS_STATUS_INVALID_ARGUMENT;
	uloop_timeout_cancel(&tick);
	uloop_timeout_set(&tick, 0);
	return 0;
}

int main(void)
{
	uloop_init();
	ctx = ubus_connect(NULL);
	if (!ctx) {
		fprintf(stderr, "netifd-stub: cannot connect to ubus\n");
		return 1;
	}
	ubus_add_uloop(ctx);
	if (ubus_add_object(ctx, &obj)) {
		fprintf(stderr, "netifd-stub: cannot add network.interface\n");
		return 1;
	}
	tick.cb = send_update;
	uloop_run();
	ubus_free(ctx);
	return 0;
}
